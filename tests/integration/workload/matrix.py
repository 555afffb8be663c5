#!/usr/bin/env python3
"""The kernel matrix: what workload.sh must produce on every kernel.

  matrix.py check --name NAME --kernel RELEASE --events EVENTS.jsonl
                  --health HEALTH.json --out RESULT.json
      Finds each expected event of the workload in EVENTS (the sensor's
      output), keeps the fields below, records the per-kind sources from
      HEALTH (`mdatp health --output json`), writes RESULT. Exits 1 naming
      every expected event that is missing.

  matrix.py compare RESULT.json... --doc KERNELS.md [--write]
      Compares every expected event field by field across the results
      (the first is the reference) and exits 1 on any difference. Renders
      the kernels page from the results: with --write it writes KERNELS.md,
      without it fails when KERNELS.md differs from what the results say.

Ephemeral ports differ from run to run and are compared as "ephemeral";
executables are compared by name (the helper's path differs between the
host and the guests). Everything else listed in FIELDS must be identical.
"""

import argparse
import json
import sys

DIR = "/tmp/mdatp-wl"
FIXED_PORTS = range(47100, 47106)

# The fields compared across kernels (JSON pointers without the leading /).
FIELDS = [
    "class_uid", "activity_id", "type_uid", "status_id",
    "actor/process/name", "actor/process/user/uid",
    "process/name", "process/cmd_line", "unmapped/process/argv",
    "file/path", "file/name", "file/parent_folder", "file_result/path",
    "src_endpoint/ip", "src_endpoint/port", "dst_endpoint/ip", "dst_endpoint/port",
    "connection_info/protocol_name", "connection_info/protocol_ver_id",
    "connection_info/direction_id", "user/name", "unmapped/call_path",
]


def at(event, pointer):
    v = event
    for k in pointer.split("/"):
        if not isinstance(v, dict):
            return None
        v = v.get(k)
    return v


def net(activity, proto, ver, direction, src, dst=None):
    want = {
        "class_uid": 4001, "activity_id": activity,
        "connection_info/protocol_name": proto, "connection_info/protocol_ver_id": ver,
        "connection_info/direction_id": direction,
        "src_endpoint/port": src,
    }
    if dst is not None:
        want["dst_endpoint/port"] = dst
    return want


# (name, the event kind it exercises, what identifies its event)
EXPECTED = [
    ("exec with argv", "process_exec",
     {"class_uid": 1007, "activity_id": 1,
      "unmapped/process/argv": ["true", "mdatp-wl-exec", "two words"]}),
    ("create and write", "file_open",
     {"class_uid": 1001, "activity_id": 1, "file/path": f"{DIR}/created"}),
    ("rename", "file_rename",
     {"class_uid": 1001, "activity_id": 5, "file/path": f"{DIR}/created",
      "file_result/path": f"{DIR}/renamed"}),
    ("chmod", "file_chmod",
     {"class_uid": 1001, "activity_id": 7, "actor/process/name": "chmod",
      "file/path": f"{DIR}/renamed"}),
    ("chown", "file_chown",
     {"class_uid": 1001, "activity_id": 7, "actor/process/name": "chown",
      "file/path": f"{DIR}/renamed"}),
    ("link", "file_link",
     {"class_uid": 1001, "activity_id": 1, "actor/process/name": "ln",
      "file/path": f"{DIR}/hardlink"}),
    ("symlink", "file_symlink",
     {"class_uid": 1001, "activity_id": 1, "actor/process/name": "ln",
      "file/path": f"{DIR}/symlink"}),
    ("mkdir", "file_mkdir",
     {"class_uid": 1001, "activity_id": 1, "actor/process/name": "mkdir",
      "file/path": f"{DIR}/subdir"}),
    ("unlink", "file_delete",
     {"class_uid": 1001, "activity_id": 4, "actor/process/name": "rm",
      "file/path": f"{DIR}/hardlink"}),
    ("read /etc/shadow", "file_open",
     {"class_uid": 1001, "activity_id": 14, "actor/process/name": "cat",
      "file/path": "/etc/shadow"}),
    ("tcp v4 bind", "network_bind", net(99, "tcp", 4, 0, 47100)),
    ("tcp v4 listen", "network_listen", net(7, "tcp", 4, 0, 47100)),
    ("tcp v4 connect", "network_connect", net(1, "tcp", 4, 2, "ephemeral", 47100)),
    ("tcp v4 accept", "network_accept", net(1, "tcp", 4, 1, "ephemeral", 47100)),
    ("tcp v6 bind", "network_bind", net(99, "tcp", 6, 0, 47101)),
    ("tcp v6 listen", "network_listen", net(7, "tcp", 6, 0, 47101)),
    ("tcp v6 connect", "network_connect", net(1, "tcp", 6, 2, "ephemeral", 47101)),
    ("tcp v6 accept", "network_accept", net(1, "tcp", 6, 1, "ephemeral", 47101)),
    ("udp v4 send", "network_udp_send", net(1, "udp", 4, 2, 47103, 47102)),
    ("udp v4 receive", "network_udp_recv", net(1, "udp", 4, 1, 47103, 47102)),
    # The 32-bit probe: the i386 ABI, socketcall included.
    ("ia32 create", "file_open",
     {"class_uid": 1001, "activity_id": 1, "file/path": f"{DIR}/ia32-made",
      "unmapped/call_path": "ia32"}),
    ("ia32 unlink", "file_delete",
     {"class_uid": 1001, "activity_id": 4, "file/path": f"{DIR}/ia32-made",
      "unmapped/call_path": "ia32"}),
    ("ia32 connect", "network_connect",
     {"class_uid": 4001, "dst_endpoint/port": 47104, "unmapped/call_path": "ia32"}),
    ("ia32 socketcall connect", "network_connect",
     {"class_uid": 4001, "dst_endpoint/port": 47105, "unmapped/call_path": "ia32"}),
    ("PAM login", "login",
     {"class_uid": 3002, "activity_id": 1, "user/name": "mdatp-wl", "status_id": 1}),
]


def project(event):
    out = {}
    for f in FIELDS:
        v = at(event, f)
        if f.endswith("/port") and isinstance(v, int) and v not in FIXED_PORTS:
            v = "ephemeral"
        out[f] = v
    return out


def check(args):
    events = []
    with open(args.events, encoding="utf-8") as f:
        for line in f:
            try:
                events.append(json.loads(line))
            except ValueError:
                pass
    with open(args.health, encoding="utf-8") as f:
        health = json.load(f)
    found, missing = {}, []
    for name, kind, want in EXPECTED:
        for e in events:
            p = project(e)
            if all(p.get(k) == v for k, v in want.items()):
                found[name] = {"kind": kind, "provider": at(e, "unmapped/provider"),
                               "fields": p}
                break
        else:
            missing.append(name)
    result = {
        "name": args.name,
        "kernel": args.kernel,
        "supplementary_events_subsystem": health.get("supplementary_events_subsystem"),
        "ebpf_program_build": health.get("ebpf_program_build"),
        "event_sources": health.get("event_sources", {}),
        "active_hooks": health.get("active_hooks", []),
        "failed_hooks": health.get("failed_hooks", []),
        "found": found,
        "missing": missing,
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    for name in missing:
        print(f"{args.name}: missing: {name}", file=sys.stderr)
    print(f"{args.name} ({args.kernel}): {len(found)} of {len(EXPECTED)} expected events")
    return 1 if missing else 0


def version(release):
    nums = []
    for part in release.replace("-", ".").split("."):
        if not part.isdigit():
            break
        nums.append(int(part))
    return nums


def major_minor(release):
    return ".".join(release.split(".")[:2])


def render(results):
    lines = [
        "# Kernels: what was tested and which source serves each event kind",
        "",
        "Generated by `tests/integration/workload/matrix.py` from the kernel",
        "matrix of the test command (`scripts/dev.sh test`): the workload",
        "`tests/integration/workload/workload.sh` ran on each kernel under the",
        "installed package (guests: Debian 12 userland; a `debian11-` run is",
        "a Debian 11 guest with its own kernel) or the suite's daemon (this",
        "project's CI host). Do not edit by hand: `scripts/dev.sh",
        "kernels-doc` rewrites it from the last run.",
        "",
        "| kernel | run | subsystem | syscall programs | hooks attached | workload events |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        build = (r.get("ebpf_program_build") or "-").split(":")[0]
        lines.append(
            f"| {major_minor(r['kernel'])} | {r['name']} | {r['supplementary_events_subsystem']} "
            f"| {build} | {len(r['active_hooks'])} of "
            f"{len(r['active_hooks']) + len(r['failed_hooks'])} "
            f"| {len(r['found'])} of {len(EXPECTED)} |")
    kinds = sorted({k for r in results for k in r["event_sources"]})
    lines += ["", "## Source per event kind", "",
              "| kind | " + " | ".join(major_minor(r["kernel"]) for r in results) + " |",
              "| --- |" + " --- |" * len(results)]
    for k in kinds:
        lines.append(f"| {k} | " + " | ".join(
            r["event_sources"].get(k, "-").split(":")[0] for r in results) + " |")
    lines += ["", "## The workload's events", "",
              "Each must be found on every kernel, and its fields (" +
              ", ".join(f"`{f}`" for f in FIELDS) +
              ") must be the same on all of them.", "",
              "| event | kind |", "| --- | --- |"]
    lines += [f"| {name} | {kind} |" for name, kind, _ in EXPECTED]
    lines += ["", "Sources: `ebpf` (a program attached), `auditd` (the audit",
              "subsystem, rules keyed `mdatp` for exactly the kinds eBPF does",
              "not serve), `unavailable` (health says why). Kernels older than",
              "5.8 have no BPF ring buffer: every kind comes from the audit",
              "subsystem there (not in this matrix: no such kernel is",
              "installable in the Debian 12 guest).", ""]
    return "\n".join(lines)


def compare(args):
    results = []
    for path in args.results:
        with open(path, encoding="utf-8") as f:
            results.append(json.load(f))
    # Oldest kernel first: the reference the others are compared with.
    results.sort(key=lambda r: version(r["kernel"]))
    ref = results[0]
    diffs = []
    for r in results:
        for name in r["missing"]:
            diffs.append(f"{r['name']}: missing: {name}")
    for name, _, _ in EXPECTED:
        if name not in ref["found"]:
            continue
        want = ref["found"][name]["fields"]
        for r in results[1:]:
            got = r["found"].get(name, {}).get("fields")
            if got is None:
                continue
            for f in FIELDS:
                if got.get(f) != want.get(f):
                    diffs.append(f"{name}: {f}: {ref['name']} {want.get(f)!r}, "
                                 f"{r['name']} {got.get(f)!r}")
    for d in diffs:
        print(f"kernel matrix: {d}", file=sys.stderr)
    doc = render(results)
    if args.write:
        with open(args.doc, "w", encoding="utf-8") as f:
            f.write(doc)
    else:
        try:
            with open(args.doc, encoding="utf-8") as f:
                current = f.read()
        except OSError:
            current = ""
        if current != doc:
            print(f"kernel matrix: {args.doc} does not match this run; "
                  "scripts/dev.sh kernels-doc rewrites it", file=sys.stderr)
            diffs.append("doc")
    print(f"kernel matrix: {len(results)} kernels, {len(diffs)} difference(s)")
    return 1 if diffs else 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    for a in ("--name", "--kernel", "--events", "--health", "--out"):
        c.add_argument(a, required=True)
    m = sub.add_parser("compare")
    m.add_argument("results", nargs="+")
    m.add_argument("--doc", required=True)
    m.add_argument("--write", action="store_true")
    args = p.parse_args()
    return check(args) if args.cmd == "check" else compare(args)


if __name__ == "__main__":
    sys.exit(main())
