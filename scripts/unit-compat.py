#!/usr/bin/env python3
"""unit-compat.py [--write]

Checks mdatp.service against packaging/systemd/directives.tsv (every
directive the unit uses has the first systemd version that understands
it, and what older systemd does with it), runs the generator
mdatp-systemd-compat as systemd 219, 238, 239 and 252 would (a fake
`systemctl --version`), and checks (or with --write, rewrites) the
per-version table in docs/PACKAGING.md.
"""
import os
import pathlib
import re
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
UNIT = ROOT / "packaging/systemd/mdatp.service"
TABLE = ROOT / "packaging/systemd/directives.tsv"
GENERATOR = ROOT / "packaging/systemd/mdatp-systemd-compat"
DOC = ROOT / "docs/PACKAGING.md"
BEGIN, END = "<!-- unit-compat:begin -->", "<!-- unit-compat:end -->"
# RHEL 7, RHEL 8, Debian 11, Debian 12.
VERSIONS = [(219, "RHEL 7"), (239, "RHEL 8"), (247, "Debian 11"), (252, "Debian 12")]


def fail(msg):
    sys.exit(f"unit-compat: {msg}")


def directives():
    table = {}
    for line in TABLE.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, since, older = line.split("\t")
        table[name] = (int(since), older)
    return table


def unit_keys():
    keys = []
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            keys.append(line.split("=", 1)[0].strip())
    return keys


def run_generator(version, last_cap, paranoid=2):
    """The drop-ins the generator writes as systemd `version` on a kernel
    whose highest capability is `last_cap`: file name -> text."""
    with tempfile.TemporaryDirectory() as d:
        fake = pathlib.Path(d, "bin")
        fake.mkdir()
        (fake / "systemctl").write_text(f"#!/bin/sh\necho 'systemd {version} (fake)'\n")
        (fake / "systemctl").chmod(0o755)
        out = pathlib.Path(d, "out")
        out.mkdir()
        # No network output: that drop-in stays unwritten.
        (fake / "mdatpd").write_text("#!/bin/sh\nexit 0\n")
        (fake / "mdatpd").chmod(0o755)
        cap = pathlib.Path(d, "cap_last_cap")
        cap.write_text(f"{last_cap}\n")
        perf = pathlib.Path(d, "perf_event_paranoid")
        perf.write_text(f"{paranoid}\n")
        env = dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}", MDATPD=str(fake / "mdatpd"),
                   CAP_LAST_CAP_FILE=str(cap), PERF_PARANOID_FILE=str(perf))
        subprocess.run([str(GENERATOR), str(out), str(out), str(out)], env=env, check=True)
        return {p.name: p.read_text() for p in out.glob("mdatp.service.d/*.conf")}


def check_generator():
    """The syscall deny-list exactly below systemd 239; CAP_SYS_ADMIN back
    exactly where CAP_BPF is unknown (systemd < 246, kernel < 5.8), not for
    perf_event_paranoid 3 (raw tracepoints need no perf_event_open)."""
    for version, last_cap, paranoid in [(219, 40, 2), (238, 40, 2), (239, 40, 2), (245, 40, 2),
                                        (246, 40, 2), (252, 40, 2), (252, 37, 2), (252, 40, 3)]:
        drops = run_generator(version, last_cap, paranoid)
        syscalls = drops.get("50-systemd-before-239.conf")
        if (syscalls is not None) != (version < 239):
            fail(f"generator as systemd {version}: syscall drop-in {'missing' if version < 239 else 'written'}")
        if syscalls and ("SystemCallFilter=\n" not in syscalls or "SystemCallFilter=~@" not in syscalls):
            fail(f"generator as systemd {version}: no reset and deny-list in {syscalls!r}")
        want_admin = version < 246 or last_cap < 39
        admin = drops.get("40-cap-sys-admin.conf")
        if (admin is not None) != want_admin:
            fail(f"generator as systemd {version}, cap_last_cap {last_cap}: CAP_SYS_ADMIN drop-in "
                 f"{'missing' if want_admin else 'written'}")
        if admin and "CapabilityBoundingSet=CAP_SYS_ADMIN\n" not in admin:
            fail(f"generator as systemd {version}: {admin!r}")
    print("unit-compat: the generator replaces the syscall allow-list below systemd 239 only, "
          "and adds CAP_SYS_ADMIN only where CAP_BPF is unknown (not for perf_event_paranoid 3)")


def check_network_dropin(mdatpd):
    """With a TCP syslog output configured, the generator opens the unit
    to that address only (the real mdatpd reads a private config dir)."""
    with tempfile.TemporaryDirectory() as d:
        conf = pathlib.Path(d, "etc/conf.d")
        conf.mkdir(parents=True)
        (conf / "10.yaml").write_text(
            "output:\n  syslog:\n    enabled: true\n    transport: tcp\n    address: 192.0.2.9:6514\n")
        wrapper = pathlib.Path(d, "mdatpd")
        wrapper.write_text(f"#!/bin/sh\nexec {mdatpd} --config-dir {d}/etc --state-dir {d}/state \"$@\"\n")
        wrapper.chmod(0o755)
        out = pathlib.Path(d, "out")
        out.mkdir()
        env = dict(os.environ, MDATPD=str(wrapper))
        subprocess.run([str(GENERATOR), str(out), str(out), str(out)], env=env, check=True)
        drop = out / "mdatp.service.d/60-network-outputs.conf"
        text = drop.read_text() if drop.exists() else ""
        if "IPAddressAllow=192.0.2.9\n" not in text or "RestrictAddressFamilies=AF_INET AF_INET6\n" not in text:
            fail(f"generator with a TCP syslog output: no IPAddressAllow=192.0.2.9 and AF_INET drop-in ({drop}: {text!r})")
    print("unit-compat: the generator opens the unit's IP sandbox to a configured collector only")


def doc_table(table, keys):
    lines = ["| systemd | what it does not apply of mdatp.service |", "| --- | --- |"]
    for version, name in VERSIONS:
        older = [(k, table[k][1]) for k in dict.fromkeys(keys) if table[k][0] > version]
        text = "; ".join(f"`{k}=` {why}" for k, why in older) or "everything applies"
        lines.append(f"| {version} ({name}) | {text} |")
    return "\n".join(lines)


def main():
    table = directives()
    keys = unit_keys()
    unknown = sorted(set(keys) - set(table))
    if unknown:
        fail(f"{', '.join(unknown)}: not in {TABLE.name} (add the first systemd version that knows it)")
    stale = sorted(set(table) - set(keys))
    if stale:
        fail(f"{', '.join(stale)}: in {TABLE.name} but not in the unit")
    for k in keys:
        since, older = table[k]
        if since > VERSIONS[0][0] and older == "-":
            fail(f"{k}: newer than systemd {VERSIONS[0][0]} but no word on what older systemd does")
    check_generator()
    block = f"{BEGIN}\n{doc_table(table, keys)}\n{END}"
    doc = DOC.read_text()
    m = re.search(re.escape(BEGIN) + ".*?" + re.escape(END), doc, re.S)
    if not m:
        fail(f"{DOC.name} has no {BEGIN} ... {END} block")
    if "--mdatpd" in sys.argv[1:]:
        check_network_dropin(sys.argv[sys.argv.index("--mdatpd") + 1])
    if "--write" in sys.argv[1:]:
        DOC.write_text(doc[: m.start()] + block + doc[m.end():])
        print(f"unit-compat: rewrote the table in {DOC.name}")
    elif m.group(0) != block:
        fail(f"the table in {DOC.name} is out of date: run scripts/unit-compat.py --write")
    else:
        print(f"unit-compat: {len(set(keys))} directives known; {DOC.name}'s table is current")


if __name__ == "__main__":
    main()
