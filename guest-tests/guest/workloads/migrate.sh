# Live migration (runner.py case "migrate"): the guest holds files open and runs fio with
# crc32c verification while the host migrates it to a second QEMU and a second daemon on the
# same directory. Prints MIGRATE-READY when the host may start the migration, then waits for
# the runner's marker file (written after the migration completed) before checking that
# open files keep reading and writing, new lookups work and fio's verification passed.
# Environment: size (fio file size, default 8M).
. /workloads/common.sh
SIZE=${size:-8M}
D="$MNT/migrate"
mkdir -p "$D" || { fail "mkdir $D"; exit 1; }

step "files held open across the migration"
echo "before migration" > "$D/held-rw"
exec 3<>"$D/held-rw" || fail "open held-rw"
mkdir -p "$D/held-dir/sub" && exec 4<"$D/held-dir" || fail "open held-dir"
echo "read only" > "$D/held-ro" && exec 5<"$D/held-ro" || fail "open held-ro"

step "fio with crc32c verification, across the migration"
# Writes first (on the source, and on the destination when the migration is quick), then
# the verification pass reads every block back and checks its crc32c.
fio --name=mig --directory="$D" --filename=fio-data --ioengine=psync --direct=1 --rw=randwrite \
    --bs=4k --size="$SIZE" --verify=crc32c --do_verify=1 --verify_fatal=1 \
    --output=/tmp/fio.out > /tmp/fio.err 2>&1 &
FIO=$!
sleep 2
echo "MIGRATE-READY"
# The runner creates this file on the host once QEMU reported the migration completed.
i=0
while [ ! -e "$MNT/migrate-done" ]; do
    i=$((i + 1))
    [ $i -gt 600 ] && { fail "no migrate-done marker after 300s"; break; }
    sleep 0.5
done
echo "vhostfsd-guest: running on the destination"

step "held files after the migration"
dd if=/dev/null of=/dev/null 2>/dev/null
got=$(head -c 16 <&3)
[ "$got" = "before migration" ] || fail "held-rw reads '$got'"
echo "written after migration" >&3 || fail "write through the held fd"
grep -q "written after migration" "$D/held-rw" || fail "held-rw write not visible"
[ "$(cat <&5)" = "read only" ] || fail "held-ro"
ls "/proc/self/fd/4/" | grep -q sub || fail "held dir lists"

step "new lookups and files after the migration"
echo "new" > "$D/created-after" || fail "create after migration"
[ "$(cat "$D/created-after")" = "new" ] || fail "read back created-after"
ls "$D" | grep -q created-after || fail "readdir after migration"
exec 3>&- 4<&- 5<&-

step "fio verification"
if ! wait $FIO; then
    cat /tmp/fio.out /tmp/fio.err
    fail "fio across the migration"
else
    grep -E "err=|WRITE:|READ:" /tmp/fio.out | head -3
    grep -q "READ:" /tmp/fio.out || fail "fio ran no verification reads"
fi
exit $FAILED
