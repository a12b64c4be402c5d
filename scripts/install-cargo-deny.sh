#!/bin/bash
# Installs cargo-deny, which checks deny.toml (licenses, duplicate rust-vmm crates, sources)
# for scripts/test.sh, into ~/.cargo/bin; skipped when that version is already there.
# crates.io has no prebuilt binary, so a fresh CI machine compiles it (plus downloading its
# ~200 crates; measured with them already downloaded): 371 s of CPU (345 user + 26 sys; about 3 minutes on 2 idle cores), 9.5 minutes
# wall at nice 10 beside other builds on this 2-core machine (2026-12-01). Nothing to trim:
# since 0.19.1 cargo-deny fetches advisories with the git command, not gix/reqwest, and
# 0.20.2 has no cargo features.
set -euo pipefail
VERSION=0.20.2
BIN=${CARGO_HOME:-$HOME/.cargo}/bin/cargo-deny
if [ -x "$BIN" ] && [ "$("$BIN" --version 2>/dev/null)" = "cargo-deny $VERSION" ]; then
    exit 0
fi
cargo install cargo-deny --version "$VERSION" --locked
