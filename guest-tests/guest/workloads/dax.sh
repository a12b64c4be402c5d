# DAX (QEMU >= 11.1 with the daemon's --dax-window): what the mount options of this boot ask.
#   dax=always: statx STATX_ATTR_DAX; fio random and sequential writes and reads with crc32c
#     verification; mmap write + msync (the host verifies), mmap read of a host-written file,
#     truncate and extend of a mapped file; a file bigger than the 64 MiB window (the guest
#     recycles its mappings); umount and mount again with mappings in place. The daemon's
#     READ/WRITE counters must stay near zero (runner).
#   dax=inode (second boot against the same daemon, --dax-policy large-files): a large file is
#     DAX, a small one is not, and mapping works again (no stale mappings from the first boot).
. /workloads/common.sh
D="$MNT/dax"
mkdir -p "$D" || { fail "mkdir $D"; exit 1; }
opts=$(grep " $MNT " /proc/mounts)
fiov() { # name args...: fio with crc32c verification, psync, buffered (DAX serves it)
    name=$1; shift
    if ! fio --name="$name" --directory="$D" --ioengine=psync --verify=crc32c --do_verify=1 \
        --verify_fatal=1 "$@" > /tmp/fio.out 2>&1; then
        cat /tmp/fio.out; fail "fio $name"; return 1
    fi
    echo "vhostfsd-guest: fio $name ok"
}
case "$opts" in
*dax=always*)
    step "dax=always"
    checker dax "$MNT" || fail "checker dax"
    fiov seq-1m --filename=seq --rw=write --bs=1M --size=16M
    fiov rand-4k --filename=rand --rw=randwrite --bs=4k --size=16M
    fiov randrw-4k --filename=rand --rw=randrw --bs=4k --size=16M --verify_backlog=64
    checker statx-dax "$D/rand" yes || fail "statx-dax rand"
    step "a file bigger than the 64 MiB window"
    fiov bigger-than-window --filename=big --rw=write --bs=1M --size=80M
    rm -f "$D/seq" "$D/rand" "$D/big"
    # The guest sends DESTROY before it evicts its inodes, so their REMOVEMAPPINGs never
    # leave it: the mappings stay in the VMM and the daemon must remove them itself.
    step "umount and mount again with mappings in place"
    checker pattern verify "$MNT/dax-host.bin" 5242880 22 || fail "host-written file through DAX"
    cd / && umount "$MNT" || fail "umount"
    mount -t virtiofs "$TAG" "$MNT" -o dax=always || { fail "mount again"; exit 1; }
    checker pattern verify "$MNT/dax-host.bin" 5242880 22 || fail "read through DAX after a remount"
    checker statx-dax "$MNT/dax-host.bin" yes || fail "statx-dax after a remount"
    # Every window slot again: a range left mapped in the VMM makes its map fail (EIO).
    truncate -s 70M "$D/fill" && cat "$D/fill" > /dev/null || fail "every window slot after a remount"
    rm -f "$D/fill"
    ;;
*dax=inode*)
    step "dax=inode, --dax-policy large-files"
    dd if=/dev/zero of="$D/small" bs=4k count=1 2>/dev/null
    checker statx-dax "$MNT/dax-host.bin" yes || fail "host-written 5 MiB file not DAX"
    checker statx-dax "$D/small" no || fail "small file DAX"
    checker pattern verify "$MNT/dax-mmap-guest.bin" 3145728 21 || fail "boot 1's file read through DAX"
    ;;
*) fail "no dax option in: $opts" ;;
esac
sync
exit $FAILED
