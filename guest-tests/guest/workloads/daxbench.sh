# DAX benchmark jobs (runner.py --dax-bench boots this with and without -o dax=always):
# 4k random read (psync), 1M sequential read, 4k random write (psync), mmap 4k random read.
# The psync jobs use O_DIRECT, so without DAX every read and write is a FUSE request.
. /workloads/common.sh
SIZE=${size:-64M}
RUNTIME=${runtime:-5}
D="$MNT/bench"
mkdir -p "$D" || { fail "mkdir $D"; exit 1; }
report() {
    awk -F';' '{ printf "FIO-RESULT %s read_kibs=%s read_iops=%s write_kibs=%s write_iops=%s\n", $3, $7, $8, $48, $49 }'
}
job() { # name args...
    name=$1; shift
    if ! fio --name="$name" --directory="$D" --filename=perf --size=$SIZE --time_based \
        --runtime=$RUNTIME --output-format=terse --terse-version=3 "$@" > /tmp/fio.out 2>&1; then
        cat /tmp/fio.out; fail "fio $name"; return 1
    fi
    grep '^3;' /tmp/fio.out | report
}
fio --name=prepare --directory="$D" --filename=perf --size=$SIZE --rw=write --bs=1M --end_fsync=1 >/dev/null || fail prepare
job randread-4k --ioengine=psync --direct=1 --rw=randread --bs=4k
job seqread-1m --ioengine=psync --direct=1 --rw=read --bs=1M
job randwrite-4k --ioengine=psync --direct=1 --rw=randwrite --bs=4k
job mmap-randread-4k --ioengine=mmap --rw=randread --bs=4k
rm -f "$D/perf"
exit $FAILED
