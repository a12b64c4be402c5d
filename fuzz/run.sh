#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60); exits non-zero on the first crash.
# Installs cargo-fuzz if missing. Works on a stable toolchain (RUSTC_BOOTSTRAP=1: cargo fuzz
# passes -Zsanitizer=address and other nightly flags). Extra libFuzzer flags: FUZZ_ARGS.
set -euo pipefail

seconds="${1:-60}"
cd "$(dirname "$0")/.."

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
targets=$(cargo fuzz list)
for t in $targets; do
    echo "== $t: ${seconds}s"
    # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
    # The corpus grows in fuzz/corpus/$t (not tracked); fuzz/seeds/$t (tracked, written by
    # fuzz/seeds/make-seeds.py) is read at start, so those inputs run on every fuzz run.
    corpus=("$PWD/fuzz/corpus/$t")
    mkdir -p "${corpus[0]}"
    if [ -d "fuzz/seeds/$t" ]; then corpus+=("$PWD/fuzz/seeds/$t"); fi
    if ! cargo fuzz run "$t" "${corpus[@]}" -- -max_total_time="$seconds" -max_len=16384 -timeout=10 \
        ${FUZZ_ARGS:-}; then
        echo "== $t: crashed; the input is under fuzz/artifacts/$t/" >&2
        exit 1
    fi
done
echo "== no crash in: $(echo $targets)"
