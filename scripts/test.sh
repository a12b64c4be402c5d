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

# A grep, not cargo-deny: `cargo install cargo-deny --locked` compiles ~300 crates, far more
# than 3 minutes on a 2-core CI machine for one check (34 min measured here, at low priority
# beside other builds); crates.io has no prebuilt binary.
step "one version each of the rust-vmm crates"
dups=$(cargo tree -d --locked -e normal,dev --depth 0 --prefix none |
       grep -E '^(vm-memory|virtio-queue|vhost|vhost-user-backend|vmm-sys-util|virtio-bindings) ' || true)
if [ -n "$dups" ]; then
    echo "duplicate rust-vmm crate versions (they must agree on one vm-memory/virtio-queue):" >&2
    echo "$dups" >&2
    exit 1
fi

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
