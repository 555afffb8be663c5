#!/usr/bin/env bash
# glibc-check.sh FLOOR FILE...: prints the newest GLIBC_ symbol version
# each ELF file needs and fails when one needs a glibc newer than FLOOR
# (the oldest glibc the packages claim to run on).
#   glibc-check.sh --newest FILE...  prints only the newest version any needs
set -euo pipefail
newest_of() { objdump -T "$1" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1; }
if [ "${1:-}" = --newest ]; then
    shift
    for f in "$@"; do newest_of "$f"; done | sort -V | tail -1
    exit 0
fi
floor=$1; shift
[ $# -gt 0 ] || { echo "usage: $0 FLOOR FILE..." >&2; exit 2; }
bad=0
for f in "$@"; do
    newest=$(newest_of "$f")
    [ -n "$newest" ] || { echo "glibc-check: $f: no GLIBC_ symbol versions (not a dynamic glibc binary?)" >&2; bad=1; continue; }
    if [ "$(printf '%s\n%s\n' "$floor" "$newest" | sort -V | tail -1)" != "$floor" ]; then
        echo "glibc-check: $f needs glibc $newest, newer than $floor:" >&2
        objdump -T "$f" | grep "GLIBC_$newest" | awk '{print "  " $NF}' >&2
        bad=1
    else
        echo "glibc-check: $(basename "$f") needs glibc $newest (<= $floor)"
    fi
done
exit $bad
