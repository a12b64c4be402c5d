# Shared helpers for the workloads (sourced). $MNT is the virtio-fs mount.
FAILED=0
step() { echo "vhostfsd-guest: === $*"; }
fail() { echo "vhostfsd-guest: FAIL: $*"; FAILED=1; }

# Files the host prepared before boot (runner.py writes $MNT/host-prepared/MANIFEST.sha256).
check_host_prepared() {
    step "host-prepared files"
    if [ ! -f "$MNT/host-prepared/MANIFEST.sha256" ]; then
        fail "host-prepared/MANIFEST.sha256 missing"; return
    fi
    (cd "$MNT/host-prepared" && sha256sum -c MANIFEST.sha256) || fail "host-prepared checksums"
}

# Files for the host to verify byte for byte after the VM is gone: a deterministic pattern the
# host regenerates, and random data whose checksum the host compares with the guest's.
write_for_host() {
    step "guest-written files"
    mkdir -p "$MNT/guest-written" || { fail "mkdir guest-written"; return; }
    checker pattern write "$MNT/guest-written/pattern-a.bin" 3000001 11 || fail "pattern a"
    checker pattern write "$MNT/guest-written/pattern-b.bin" 65536 12 || fail "pattern b"
    dd if=/dev/urandom of="$MNT/guest-written/random.bin" bs=64k count=40 2>/dev/null || fail "dd random"
    : > "$MNT/guest-written/empty"
    sync
    checker pattern verify "$MNT/guest-written/pattern-a.bin" 3000001 11 || fail "pattern a read back"
    for f in random.bin pattern-a.bin; do
        echo "GUEST-SHA256 $(sha256sum "$MNT/guest-written/$f" | cut -d' ' -f1) $f"
    done
}
