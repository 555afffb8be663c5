#!/usr/bin/env python3
"""rpm-deps-check.py PROVIDES_LIST RPM...

Checks every Requires of the given RPMs against what a distribution
provides (a recorded list, packaging/distros/<name>.txt): a library
symbol version newer than the distribution's, an rpmlib feature its rpm
lacks, a package or a version it does not ship fails the check, naming
the requirement. What the RPMs provide to each other is satisfied.
"""
import re
import subprocess
import sys


def vkey(v):
    """A version as a sortable tuple of numbers (rpm's order for these)."""
    return [int(p) if p.isdigit() else p for p in re.split(r"[.\-_]", v) if p]


def load(path):
    have = {"soname": {}, "rpmlib": set(), "provides": set(), "package": {}, "file": set()}
    for line in open(path, encoding="utf-8"):
        line = line.split("#", 1)[0].split()
        if not line:
            continue
        kind, rest = line[0], line[1:]
        if kind == "soname":
            have["soname"][rest[0]] = (rest[1], rest[2])
        elif kind == "rpmlib":
            have["rpmlib"].add(rest[0])
        elif kind == "package":
            have["package"][rest[0]] = rest[1]
        elif kind in ("provides", "file"):
            have[kind].add(rest[0])
        else:
            sys.exit(f"rpm-deps-check: {path}: unknown line kind {kind!r}")
    return have


def query(rpm, what):
    out = subprocess.run(["rpm", "-qp", f"--{what}", rpm], check=True,
                         capture_output=True, text=True).stdout
    return [l.strip() for l in out.splitlines() if l.strip()]


def verdict(req, have, own):
    """None when satisfied, else why not."""
    name, _, ver = (req.split(None, 2) + ["", ""])[:3] if " " in req else (req, "", "")
    if name in own:
        return None
    m = re.fullmatch(r"rpmlib\((\w+)\)", name)
    if m:
        return None if m.group(1) in have["rpmlib"] else f"rpm lacks the feature {m.group(1)}"
    m = re.fullmatch(r"([\w.+-]+\.so[\w.]*)\((.*)\)\(64bit\)", name)
    if m:
        lib, tag = m.groups()
        if lib not in have["soname"]:
            return f"no {lib}"
        if not tag:
            return None
        prefix, newest = have["soname"][lib]
        tm = re.fullmatch(re.escape(prefix) + r"_([\d.]+)", tag)
        if not tm:
            return f"{lib} has no version {tag}"
        if vkey(tm.group(1)) > vkey(newest):
            return f"{lib} is {prefix}_{newest} at newest, {tag} needed"
        return None
    if name in have["provides"]:
        return None
    if name.startswith("/"):
        return None if name in have["file"] else f"no file {name}"
    if name in have["package"]:
        if ver and vkey(have["package"][name]) < vkey(ver.split("-")[0]):
            return f"{name} is {have['package'][name]}, {ver} needed"
        return None
    return "not provided"


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    have = load(sys.argv[1])
    rpms = sys.argv[2:]
    own = set()
    for rpm in rpms:
        own.update(p.split()[0] for p in query(rpm, "provides"))
    bad = 0
    for rpm in rpms:
        for req in sorted(set(query(rpm, "requires"))):
            why = verdict(req, have, own)
            if why:
                bad += 1
                print(f"rpm-deps-check: {rpm.rsplit('/', 1)[-1]}: {req}: {why}", file=sys.stderr)
    name = sys.argv[1].rsplit("/", 1)[-1]
    if bad:
        sys.exit(f"rpm-deps-check: {bad} requirement(s) not met by {name}")
    print(f"rpm-deps-check: every requirement of {len(rpms)} package(s) is met by {name}")


if __name__ == "__main__":
    main()
