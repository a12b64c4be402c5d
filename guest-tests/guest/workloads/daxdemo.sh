# DAX demo (guest-tests/demo.sh --dax): the same file I/O on a DAX mount (-o dax=always) and,
# on a second boot, on a plain one. The host logs the daemon's request counters (SIGUSR1) when
# the I/O starts and ends (handshake files in $MNT/.demo) and shows which requests reached it.
. /workloads/common.sh
S="$MNT/.demo"
F="$MNT/demo.bin"
# Tells the host "$1" and waits for its answer "$1-ack" (it has logged the counters).
handshake() {
    : > "$S/$1" || { fail "handshake $1"; return 1; }
    n=0
    while [ ! -e "$S/$1-ack" ]; do
        sleep 0.1
        n=$((n + 1))
        [ $n -lt 600 ] || { fail "no answer from the host to $1"; return 1; }
    done
}
opts=$(grep " $MNT " /proc/mounts)
echo "vhostfsd-guest: mounted: $opts"
case "$opts" in *dax=always*) dax=1 ;; *) dax=0 ;; esac
mkdir -p "$S"
# Laid out before the counted I/O: a write that extends a file goes through the daemon even
# with DAX (the guest kernel keeps size changes and data in order that way).
rm -f "$F"
truncate -s 8M "$F" || fail "truncate"
handshake io-start || exit 1
dd if=/dev/urandom of="$F" bs=1M count=8 conv=notrunc 2>/dev/null || fail "dd write"
sync
echo 3 > /proc/sys/vm/drop_caches
sum=$(sha256sum "$F" | cut -d' ' -f1) || fail "read back"
echo "vhostfsd-guest: wrote 8 MiB into $F and read it back: sha256 $sum"
echo "GUEST-SHA256 $sum demo.bin"
if [ $dax = 1 ]; then
    checker statx-dax "$F" yes || fail "statx: demo.bin not in DAX mode"
    # mmap: write + msync (the host checks the bytes), read a host-written file through a
    # mapping, truncate and extend a mapped file.
    checker dax "$MNT" || fail "checker dax"
fi
handshake io-end || exit 1
exit $FAILED
