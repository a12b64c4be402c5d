#!/bin/bash
# Host mount benchmark (not a test): fio bs=4k ioengine=sync fsync_on_close, jobs read,
# randread, write, randwrite on one large file, caches dropped before every run, against
#   native        the shared directory itself
#   no-pt         vhostfsd --mount --passthrough off --io-uring off (read/write on /dev/fuse)
#   uring         vhostfsd --mount --passthrough off --io-uring on (FUSE over io_uring)
#   pt            vhostfsd --mount --passthrough on --io-uring off
#   hp            libfuse's passthrough_hp example (built from Debian's fuse3 source)
# alternating configurations inside each round; prints the median KiB/s and the ratio to
# native. Then a metadata run (create, stat, readdir, unlink of FILES files) on native,
# /dev/fuse, io_uring and passthrough_hp, alternating, medians and ratios to native.
# FUSE over io_uring needs the fuse module's enable_uring parameter: the script sets it to
# Y for the run and puts the old value back (without it, the uring column is left out).
#
# Usage (root): benches/host-mount.sh [--size MiB] [--runtime S] [--rounds N] [--files N]
#                                     [--settle S] [--configs LIST] [--jobs LIST]
#                                     [--no-fio] [--no-meta]
# --settle S: seconds to wait after dropping the caches before each fio run (default 10).
#   On a VM whose balloon reports free pages to the host, the pages drop_caches frees are
#   handed back about 2 s later and the next run faults them in again; a run started before
#   that lands in a different mode (docs/performance.md). Waiting puts every run in the same
#   state. 0 restores the old behaviour.
# --configs LIST: the fio columns after native, comma-separated among no-pt,uring,pt,hp
#   (default: all). --jobs LIST: among read,randread,write,randwrite (default: all).
# Needs: target/release/vhostfsd (built here), a fio binary ($FIO, or the static one
# guest-tests/build-assets.sh leaves in guest-tests/.cache/fio), python3, and for the hp
# column apt-get source fuse3 + libfuse3-dev (done here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=2048 RUNTIME=8 ROUNDS=3 FILES=10000 DO_FIO=1 DO_META=1 SETTLE=10
ONLY_CONFIGS="" ONLY_JOBS=""
while [ $# -gt 0 ]; do
    case $1 in
        --no-fio) DO_FIO=0; shift ;;
        --no-meta) DO_META=0; shift ;;
        --size) SIZE_MIB=$2; shift 2 ;;
        --runtime) RUNTIME=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --files) FILES=$2; shift 2 ;;
        --settle) SETTLE=$2; shift 2 ;;
        --configs) ONLY_CONFIGS=$2; shift 2 ;;
        --jobs) ONLY_JOBS=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "host-mount.sh: needs root (mount, drop_caches)" >&2; exit 1; }

FIO=${FIO:-guest-tests/.cache/fio}
[ -x "$FIO" ] || guest-tests/build-assets.sh >&2
cargo build --release --locked -q
VHOSTFSD=$PWD/target/release/vhostfsd

# passthrough_hp from Debian's fuse3 source, cached in target/tools.
HP=$PWD/target/tools/passthrough_hp
if [ ! -x "$HP" ]; then
    dpkg-query -W -f='${Status}' libfuse3-dev 2>/dev/null | grep -q 'install ok installed' ||
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libfuse3-dev g++ >&2
    src=$(mktemp -d); chmod 777 "$src"
    (cd "$src" && apt-get source -q --download-only fuse3 >/dev/null &&
     dpkg-source --no-check -x fuse3_*.dsc src >/dev/null)
    mkdir -p "$(dirname "$HP")"
    g++ -O2 -std=c++17 -o "$HP" "$src/src/example/passthrough_hp.cc" \
        $(pkg-config --cflags --libs fuse3) -lpthread
    rm -rf "$src"
fi

WORK=$(mktemp -d /var/tmp/vhostfsd-bench.XXXXXX)
SRC=$WORK/src; mkdir -p "$SRC" "$WORK/no-pt" "$WORK/uring" "$WORK/pt" "$WORK/hp"
PIDS=()
URING_PARAM=/sys/module/fuse/parameters/enable_uring
URING_OLD=$(cat "$URING_PARAM" 2>/dev/null || true)
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 1
    for m in no-pt uring pt hp; do umount -l "$WORK/$m" 2>/dev/null || true; done
    rm -rf "$WORK"
    [ -z "$URING_OLD" ] || echo "$URING_OLD" > "$URING_PARAM"
}
trap cleanup EXIT

wait_mount() {
    for _ in $(seq 100); do
        grep -q " $1 " /proc/self/mounts && return 0
        sleep 0.1
    done
    echo "no mount at $1" >&2; exit 1
}
"$VHOSTFSD" --shared-dir "$SRC" --mount "$WORK/no-pt" --passthrough off --io-uring off \
    --log-level warn &
PIDS+=($!)
"$VHOSTFSD" --shared-dir "$SRC" --mount "$WORK/pt" --passthrough on --io-uring off \
    --log-level warn &
PIDS+=($!)
"$HP" --foreground "$SRC" "$WORK/hp" &
PIDS+=($!)
MOUNTS=(no-pt pt hp)
URING=()
if [ -n "$URING_OLD" ] && echo Y > "$URING_PARAM"; then
    "$VHOSTFSD" --shared-dir "$SRC" --mount "$WORK/uring" --passthrough off --io-uring on \
        --log-level warn &
    PIDS+=($!)
    MOUNTS+=(uring); URING=(uring)
else
    echo "# no FUSE over io_uring in this kernel ($URING_PARAM): no uring column" >&2
fi
for m in "${MOUNTS[@]}"; do wait_mount "$WORK/$m"; done

declare -A DIR=([native]=$SRC [no-pt]=$WORK/no-pt [uring]=$WORK/uring [pt]=$WORK/pt [hp]=$WORK/hp)
declare -A NAME=([native]=native [no-pt]="vhostfsd /dev/fuse" [uring]="vhostfsd io_uring"
                 [pt]="vhostfsd pt" [hp]="passthrough_hp")
CONFIGS=(native no-pt "${URING[@]}" pt hp)
if [ -n "$ONLY_CONFIGS" ]; then
    wanted=()
    for c in "${CONFIGS[@]:1}"; do
        case ",$ONLY_CONFIGS," in *",$c,"*) wanted+=("$c") ;; esac
    done
    CONFIGS=(native "${wanted[@]}")
fi
JOBS=(read randread write randwrite)
[ -z "$ONLY_JOBS" ] || IFS=, read -r -a JOBS <<< "$ONLY_JOBS"
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }
fmedian() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { echo "$1 $2" | awk '{printf "%.2f", ($2 > 0) ? $1/$2 : 0}'; }
spread() { tr ' ' '\n' | grep . | sort -g | sed -n '1p;$p' | paste -sd- -; }
# table HEAD MEDIAN RESULTS CONFIGS ROWS: a markdown table, one row per entry of the array
# named ROWS, one column per entry of CONFIGS, each cell the MEDIAN of RESULTS[row,config]
# and its ratio to the first configuration's; then the same cells' lowest-highest runs
# (single runs on a VM can land far from the median: see docs/performance.md).
table() {
    local head=$1 med=$2 line n v r c
    local -n res=$3 cfgs=$4 rows=$5
    line="| $head"
    for c in "${cfgs[@]}"; do line+=" | ${NAME[$c]}"; done
    echo "$line |"
    echo "| --- |$(printf ' ---: |%.0s' "${cfgs[@]}")"
    for r in "${rows[@]}"; do
        n=$(echo "${res[$r,${cfgs[0]}]}" | $med)
        line="| $r | $n"
        for c in "${cfgs[@]:1}"; do
            v=$(echo "${res[$r,$c]}" | $med)
            line+=" | $v ($(ratio "$v" "$n")x)"
        done
        echo "$line |"
    done
    echo
    echo "lowest-highest run of each cell:"
    for r in "${rows[@]}"; do
        line="  $r:"
        for c in "${cfgs[@]}"; do line+=" ${NAME[$c]} $(echo "${res[$r,$c]}" | spread);"; done
        echo "$line"
    done
}

if [ "$DO_FIO" = 1 ]; then

echo "# laying out a ${SIZE_MIB} MiB file" >&2
"$FIO" --name=layout --filename="$SRC/bench.dat" --rw=write --bs=1M --size="${SIZE_MIB}M" \
    --ioengine=sync --end_fsync=1 --output=/dev/null

fio_kib() {  # dir job -> KiB/s
    sync; echo 3 > /proc/sys/vm/drop_caches
    sleep "$SETTLE"
    "$FIO" --name=b --filename="$1/bench.dat" --rw="$2" --bs=4k --size="${SIZE_MIB}M" \
        --ioengine=sync --fsync_on_close=1 --runtime="$RUNTIME" --time_based=0 \
        --minimal --output-format=terse |
    awk -F';' -v job="$2" '{ print (job ~ /read/) ? $7 : $48 }'
}

declare -A RES
for r in $(seq "$ROUNDS"); do
    for j in "${JOBS[@]}"; do
        # Rotate the order each round so no configuration always runs first.
        for i in "${!CONFIGS[@]}"; do
            c=${CONFIGS[$(( (i + r) % ${#CONFIGS[@]} ))]}
            RES[$j,$c]="${RES[$j,$c]:-} $(fio_kib "${DIR[$c]}" "$j")"
        done
    done
    echo "# round $r of $ROUNDS done" >&2
done

echo
echo "fio bs=4k ioengine=sync fsync_on_close=1, ${SIZE_MIB} MiB file, caches dropped and ${SETTLE} s of settling before each run, ${RUNTIME} s cap, median of $ROUNDS (KiB/s, ratio to native)"
table job median RES CONFIGS JOBS
fi

[ "$DO_META" = 1 ] || exit 0
META_CONFIGS=(native no-pt "${URING[@]}" hp)
echo
echo "metadata: $FILES files, create / stat / readdir / unlink (seconds, median of $ROUNDS, configurations alternating; ratio: time / native time, lower is faster)"
meta() {  # dir -> "create stat readdir unlink"
    python3 - "$1" "$FILES" <<'PY'
import os, sys, time
d = os.path.join(sys.argv[1], "meta"); n = int(sys.argv[2])
os.mkdir(d)
t = [time.perf_counter()]
for i in range(n):
    os.close(os.open(f"{d}/f{i}", os.O_CREAT | os.O_WRONLY, 0o644))
t.append(time.perf_counter())
for i in range(n):
    os.stat(f"{d}/f{i}")
t.append(time.perf_counter())
assert len(os.listdir(d)) == n
t.append(time.perf_counter())
for i in range(n):
    os.unlink(f"{d}/f{i}")
t.append(time.perf_counter())
os.rmdir(d)
print(" ".join(f"{b - a:.3f}" for a, b in zip(t, t[1:])))
PY
}
declare -A META
for r in $(seq "$ROUNDS"); do
    for i in "${!META_CONFIGS[@]}"; do
        c=${META_CONFIGS[$(( (i + r) % ${#META_CONFIGS[@]} ))]}
        sync; echo 3 > /proc/sys/vm/drop_caches
        read -r cr st rd ul < <(meta "${DIR[$c]}")
        META[create,$c]+=" $cr"; META[stat,$c]+=" $st"; META[readdir,$c]+=" $rd"; META[unlink,$c]+=" $ul"
    done
    echo "# metadata round $r of $ROUNDS done" >&2
done
OPS=(create stat readdir unlink)
table op fmedian META META_CONFIGS OPS
