# fio with data verification (crc32c): sequential 1M and random 4k writes with the psync, libaio
# and io_uring engines; then short read throughput runs whose figures runner.py/compare.sh parse.
# Environment: size (per file, default 16M), runtime (seconds per read run, default 5),
# engines (default "psync libaio io_uring"), verify (default 1), perf (default 1).
. /workloads/common.sh
check_host_prepared
SIZE=${size:-16M}
RUNTIME=${runtime:-5}
ENGINES=${engines:-psync libaio io_uring}
D="$MNT/fio"
mkdir -p "$D" || { fail "mkdir $D"; exit 1; }

# terse v3 fields: 3 name, 6/7/8 read kB, KiB/s, IOPS; 47/48/49 write kB, KiB/s, IOPS.
report() {
    awk -F';' '{ printf "FIO-RESULT %s read_kibs=%s read_iops=%s write_kibs=%s write_iops=%s\n", $3, $7, $8, $48, $49 }'
}
run_fio() { # name args...
    name=$1; shift
    t0=$(cut -d' ' -f1 /proc/uptime)
    if ! fio --name="$name" --directory="$D" --output-format=terse --terse-version=3 "$@" > /tmp/fio.out 2>/tmp/fio.err; then
        cat /tmp/fio.out /tmp/fio.err
        fail "fio $name"
        return 1
    fi
    grep -v '^3;' /tmp/fio.out
    grep '^3;' /tmp/fio.out | report
    echo "vhostfsd-guest: fio $name ok ($(awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN{printf "%.1f", b-a}')s)"
}

if [ "${verify:-1}" = 1 ]; then
    for e in $ENGINES; do
        case $e in psync) depth=1 ;; *) depth=8 ;; esac
        step "fio verify $e"
        run_fio "seqwrite-verify-$e" --filename="seq-$e" --ioengine=$e --iodepth=$depth --direct=1 \
            --rw=write --bs=1M --size=$SIZE --verify=crc32c --do_verify=1 --verify_fatal=1
        run_fio "randwrite-verify-$e" --filename="rand-$e" --ioengine=$e --iodepth=$depth --direct=1 \
            --rw=randwrite --bs=4k --size=$SIZE --verify=crc32c --do_verify=1 --verify_fatal=1
    done
    # Two jobs on two vCPUs, so that both request queues carry traffic when there are two.
    step "fio verify, 2 jobs on 2 vCPUs"
    run_fio "randwrite-verify-2jobs" --ioengine=libaio --iodepth=4 --direct=1 --numjobs=2 \
        --cpus_allowed=0-1 --cpus_allowed_policy=split --group_reporting \
        --rw=randwrite --bs=4k --size=$SIZE --verify=crc32c --do_verify=1 --verify_fatal=1
    rm -f "$D"/randwrite-verify-2jobs.*
    step "fio verify buffered psync"
    run_fio "randwrite-verify-buffered" --filename=rand-buffered --ioengine=psync --direct=0 \
        --rw=randwrite --bs=4k --size=$SIZE --verify=crc32c --do_verify=1 --verify_fatal=1 --fsync_on_close=1
    rm -f "$D"/rand-* "$D"/seq-*
fi

if [ "${perf:-1}" = 1 ]; then
    step "fio throughput (${RUNTIME}s each)"
    run_fio perf-prepare --filename=perf --ioengine=psync --rw=write --bs=1M --size=$SIZE --end_fsync=1 >/dev/null
    run_fio seqread-1m --filename=perf --ioengine=psync --direct=1 --rw=read --bs=1M --size=$SIZE \
        --time_based --runtime=$RUNTIME
    run_fio randread-4k --filename=perf --ioengine=psync --direct=1 --rw=randread --bs=4k --size=$SIZE \
        --time_based --runtime=$RUNTIME
    run_fio randread-4k-io_uring-qd8 --filename=perf --ioengine=io_uring --iodepth=8 --direct=1 \
        --rw=randread --bs=4k --size=$SIZE --time_based --runtime=$RUNTIME
    run_fio randwrite-4k --filename=perf --ioengine=psync --direct=1 --rw=randwrite --bs=4k --size=$SIZE \
        --time_based --runtime=$RUNTIME
    rm -f "$D/perf"
fi
rmdir "$D"
write_for_host
exit $FAILED
