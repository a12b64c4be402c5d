#!/bin/bash
# The whole test suite, as CI runs it: lints, unit and integration tests (a real vhostfsd
# driven through the vhost-user protocol), then the guest tests (a real Linux guest under
# QEMU mounting the share and running fio and filesystem workloads).
#
# Needs root (credentials, namespaces, QEMU's vhost-user socket); installs what it needs
# with apt-get on Debian bookworm. The last step builds and installs the .deb and boots guests
# through the installed systemd unit's command line and through libvirt
# (packaging/test-package.sh). SKIP_FUZZ=1 skips the short fuzz runs (FUZZ_SECONDS per
# target, default 15); SKIP_GUEST_TESTS=1 stops before the guest tests.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "scripts/test.sh: the tests need root (per-request credentials, namespaces, QEMU);" \
         "run it with sudo" >&2
    exit 1
fi

step() { printf '\n=== %s (%s)\n' "$*" "$(date +%T)"; }

step "install dependencies"
guest-tests/install-deps.sh
# The POSIX suite of tests/host_posix.rs (cached in target/tools after the first run).
PJDFSTEST=$(scripts/install-pjdfstest.sh)
export PJDFSTEST VHOSTFSD_REQUIRE_PJDFSTEST=1
# cargo-deny, for the deny.toml step below.
scripts/install-cargo-deny.sh
# tests/dax.rs's --dax-policy attr test needs a filesystem that keeps FS_DAX_FL (chattr +x):
# TMPDIR on ext4/xfs, or root to mount an ext4 loop image. Here a skip is a failure.
export VHOSTFSD_REQUIRE_DAX_FLAG=1
# tests/id_mapping.rs's unprivileged --uid-map test needs newuidmap (uidmap, installed above).
export VHOSTFSD_REQUIRE_UIDMAP=1

step "cargo fmt --check (imports grouped std, external, crate: see rustfmt.toml)"
cargo fmt --check -- --config group_imports=StdExternalCrate

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

step "guest checker: cargo fmt --check, cargo clippy -- -D warnings"
cargo fmt --check --manifest-path guest-tests/checker/Cargo.toml
CARGO_TARGET_DIR=guest-tests/.cache/checker-target \
    cargo clippy --locked --manifest-path guest-tests/checker/Cargo.toml -- -D warnings

# The three lock files: the main workspace, fuzz/, the guest checker. What is checked, and why
# not `advisories`: deny.toml.
step "cargo deny: licenses, one version each of the rust-vmm crates, sources (deny.toml)"
for manifest in Cargo.toml fuzz/Cargo.toml guest-tests/checker/Cargo.toml; do
    cargo deny --locked --workspace --manifest-path "$manifest" check licenses bans sources
done

step "cargo doc (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --lib --locked

# Also runs benches/vhostfs-bench in test mode: 1 s of every workload, every reply checked.
step "cargo test (unit, vhost-user and host-mount integration tests, pjdfstest, vhostfs-bench smoke)"
cargo test --locked --all-targets

if [ "${SKIP_FUZZ:-0}" != 1 ]; then
    step "fuzz targets, ${FUZZ_SECONDS:-15} s each (cargo-fuzz; SKIP_FUZZ=1 skips)"
    fuzz/run.sh "${FUZZ_SECONDS:-15}"
fi

if [ "${SKIP_GUEST_TESTS:-0}" = 1 ]; then
    echo "SKIP_GUEST_TESTS=1: guest tests skipped"
    exit 0
fi

step "guest tests (real Linux guest under QEMU)"
cargo build --release --locked --package vhostfsd
VHOSTFSD="$PWD/target/release/vhostfsd" guest-tests/run.sh

step "guest test: live migration between two QEMU 10.0 and two daemons on one directory"
VHOSTFSD="$PWD/target/release/vhostfsd" python3 guest-tests/migrate.py

step "package: .deb and RPM, installed files, systemd units, unit and libvirt guest boots"
packaging/test-package.sh
