#!/bin/bash
# Benchmark (not a test): the same fio jobs in the guest against vhostfsd and against virtiofsd,
# alternating runs over several rounds, printing each job's median MiB/s and the ratio
# vhostfsd/virtiofsd. Guest figures under TCG are noisy: read the ratios, not the absolutes.
#   guest-tests/compare.sh [--rounds N] [--runtime SECONDS] [--size 32M] [--cache auto|never] [--qemu 10.0|7.2]
# VHOSTFSD: vhostfsd binary (default: cargo build --release); VIRTIOFSD: the reference daemon
# (default: cargo install virtiofsd --locked into guest-tests/.cache/cargo-root). Must run as root.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
if [ "$(id -u)" != 0 ]; then
    echo "compare.sh: must run as root" >&2
    exit 1
fi
"$HERE/build-assets.sh"
if [ -z "${VIRTIOFSD:-}" ]; then
    VIRTIOFSD="$HERE/.cache/cargo-root/bin/virtiofsd"
    if [ ! -x "$VIRTIOFSD" ]; then
        echo "compare.sh: cargo install virtiofsd --locked (a few minutes)" >&2
        cargo install --quiet virtiofsd --locked --root "$HERE/.cache/cargo-root"
    fi
fi
if [ -z "${VHOSTFSD:-}" ]; then
    echo "compare.sh: cargo build --release" >&2
    cargo build --release --quiet --manifest-path "$REPO/Cargo.toml"
    VHOSTFSD="$REPO/target/release/vhostfsd"
fi
exec python3 "$HERE/runner.py" --compare --daemon "$VHOSTFSD" --other-daemon "$VIRTIOFSD" "$@"
