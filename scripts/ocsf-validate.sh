#!/usr/bin/env bash
# Validates events against the OCSF 1.5.0 schema's own definitions
# (tests/ocsf/validate.py), with the schema export of the PyPI package
# pydantic-ocsf, pinned below and cached in target/ocsf:
#   the golden fixtures (daemon/tests/golden/*.json), and
#   every event the integration tests' daemons wrote ($MDATP_TEST_EVENT_ARCHIVE,
#   default target/test-events), which must include both providers'.
# A deliberately broken sample must fail, so the check can fail.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGE=pydantic-ocsf
VERSION=3.0.0
cache=target/ocsf
schema=$cache/v1_5_0.json
die() { echo "ocsf-validate: $*" >&2; exit 1; }

if [ ! -f "$schema" ]; then
    mkdir -p "$cache"
    python3 -m pip --version >/dev/null 2>&1 || { . scripts/apt.sh; apt_install python3-pip; }
    python3 -m pip download --quiet --no-deps --dest "$cache" "$PACKAGE==$VERSION" \
        || die "cannot download $PACKAGE $VERSION from PyPI"
    python3 - "$cache" "$schema" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/pydantic_ocsf-*.whl")[0]
with zipfile.ZipFile(wheel) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("ocsf/schemas/v1_5_0.json"))
PY
fi

if python3 tests/ocsf/validate.py "$schema" tests/ocsf/invalid.jsonl >/dev/null; then
    die "the validator accepted tests/ocsf/invalid.jsonl: it cannot fail"
fi
python3 tests/ocsf/validate.py "$schema" daemon/tests/golden/*.json
archive=${MDATP_TEST_EVENT_ARCHIVE:-target/test-events}
if [ "${1:-}" != "--golden-only" ]; then
    files=("$archive"/*.jsonl)
    [ -e "${files[0]}" ] || die "no events in $archive: run the integration tests first"
    out=$(python3 tests/ocsf/validate.py "$schema" "${files[@]}") || { echo "$out"; exit 1; }
    echo "$out" | head -1
    for p in ebpf auditd; do
        grep -q "'$p': " <<<"$(echo "$out" | head -1)" || die "no $p events among the tests' events"
    done
fi
