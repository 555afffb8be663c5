#!/usr/bin/env bash
# scripts/fuzz.sh RUNS: builds the fuzz targets (fuzz/, cargo-fuzz with
# libFuzzer on the nightly toolchain) and runs each for RUNS inputs,
# starting from its corpus in target/fuzz-corpus/<target> (kept between
# runs). Prints one line per target: inputs run, time, corpus size. A
# crash stops with libFuzzer's report and the input under
# fuzz/artifacts/<target>/; each one found becomes a unit test with its
# fix (docs/RELIABILITY.md).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1000000}

rustup toolchain list | grep -q '^nightly' ||
    { echo "fuzz.sh: the nightly toolchain is needed: rustup toolchain install nightly" >&2; exit 1; }
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cd fuzz
cargo +nightly fuzz build -O --debug-assertions
report=()
for t in $(cargo +nightly fuzz list); do
    corpus=../target/fuzz-corpus/$t
    mkdir -p "$corpus"
    # Real-shaped inputs to start from (fuzz/seeds/<target>), if any.
    [ -d "seeds/$t" ] && cp -n "seeds/$t"/* "$corpus"/
    log=../target/fuzz-corpus/$t.log
    start=$SECONDS
    cargo +nightly fuzz run -O --debug-assertions "$t" "$corpus" -- \
        -runs="$runs" -max_len=8192 -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
        >"$log" 2>&1 || { tail -40 "$log"; echo "fuzz.sh: $t crashed (input under fuzz/artifacts/$t)" >&2; exit 1; }
    done_line=$(grep -m1 '^Done ' "$log" || echo "Done ? runs")
    report+=("$t: ${done_line#Done } ($((SECONDS - start)) s with start-up), corpus $(ls "$corpus" | wc -l) inputs")
done
printf 'fuzz.sh: %s\n' "${report[@]}"
