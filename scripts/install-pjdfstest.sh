#!/bin/bash
# Installs the pjdfstest POSIX test runner (the Rust rewrite, crates.io) for
# tests/host_posix.rs, once: it is cached in target/tools (or $VHOSTFSD_TOOLS) and printed.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=0.2.2
ROOT=${VHOSTFSD_TOOLS:-$PWD/target/tools}
BIN=$ROOT/bin/pjdfstest
if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q " $VERSION\$"; then
    echo "$BIN"
    exit 0
fi
cargo install pjdfstest --version "$VERSION" --locked --root "$ROOT" >&2
echo "$BIN"
