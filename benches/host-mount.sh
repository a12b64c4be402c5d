#!/bin/bash
# Host mount benchmark (not a test): fio bs=4k ioengine=sync fsync_on_close, jobs read,
# randread, write, randwrite on one large file, caches dropped before every run, against
#   native        the shared directory itself
#   no-pt         vhostfsd --mount --passthrough off
#   pt            vhostfsd --mount --passthrough on
#   hp            libfuse's passthrough_hp example (built from Debian's fuse3 source)
# alternating configurations inside each round; prints the median KiB/s and the ratio to
# native. Then a metadata run (create, stat, readdir, unlink of FILES files) on the mounts.
#
# Usage (root): benches/host-mount.sh [--size MiB] [--runtime S] [--rounds N] [--files N]
# Needs: target/release/vhostfsd (built here), a fio binary ($FIO, or the static one
# guest-tests/build-assets.sh leaves in guest-tests/.cache/fio), python3, and for the hp
# column apt-get source fuse3 + libfuse3-dev (done here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=2048 RUNTIME=8 ROUNDS=3 FILES=10000
while [ $# -gt 0 ]; do
    case $1 in
        --size) SIZE_MIB=$2; shift 2 ;;
        --runtime) RUNTIME=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --files) FILES=$2; shift 2 ;;
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
SRC=$WORK/src; mkdir -p "$SRC" "$WORK/no-pt" "$WORK/pt" "$WORK/hp"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 1
    for m in no-pt pt hp; do umount -l "$WORK/$m" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

wait_mount() {
    for _ in $(seq 100); do
        grep -q " $1 " /proc/self/mounts && return 0
        sleep 0.1
    done
    echo "no mount at $1" >&2; exit 1
}
"$VHOSTFSD" --shared-dir "$SRC" --mount "$WORK/no-pt" --passthrough off --log-level warn &
PIDS+=($!)
"$VHOSTFSD" --shared-dir "$SRC" --mount "$WORK/pt" --passthrough on --log-level warn &
PIDS+=($!)
"$HP" --foreground "$SRC" "$WORK/hp" &
PIDS+=($!)
for m in no-pt pt hp; do wait_mount "$WORK/$m"; done

declare -A DIR=([native]=$SRC [no-pt]=$WORK/no-pt [pt]=$WORK/pt [hp]=$WORK/hp)
CONFIGS=(native no-pt pt hp)
JOBS=(read randread write randwrite)

echo "# laying out a ${SIZE_MIB} MiB file" >&2
"$FIO" --name=layout --filename="$SRC/bench.dat" --rw=write --bs=1M --size="${SIZE_MIB}M" \
    --ioengine=sync --end_fsync=1 --output=/dev/null

fio_kib() {  # dir job -> KiB/s
    sync; echo 3 > /proc/sys/vm/drop_caches
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

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }
echo
echo "fio bs=4k ioengine=sync fsync_on_close=1, ${SIZE_MIB} MiB file, caches dropped, ${RUNTIME} s cap, median of $ROUNDS (KiB/s, ratio to native)"
printf '| %-9s | %10s | %18s | %18s | %18s |\n' job native "vhostfsd no-pt" "vhostfsd pt" "passthrough_hp"
printf '|%s|%s|%s|%s|%s|\n' ----------- ------------ -------------------- -------------------- --------------------
for j in "${JOBS[@]}"; do
    n=$(echo "${RES[$j,native]}" | median)
    row=$(printf '| %-9s | %10s ' "$j" "$n")
    for c in no-pt pt hp; do
        v=$(echo "${RES[$j,$c]}" | median)
        row+=$(printf '| %9s (%5.2fx) ' "$v" "$(echo "$v $n" | awk '{print ($2 > 0) ? $1/$2 : 0}')")
    done
    echo "$row|"
done

echo
echo "metadata: $FILES files, create / stat / readdir / unlink (seconds, median of $ROUNDS)"
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
    for c in native no-pt hp; do
        sync; echo 3 > /proc/sys/vm/drop_caches
        read -r cr st rd ul < <(meta "${DIR[$c]}")
        META[$c,create]+=" $cr"; META[$c,stat]+=" $st"; META[$c,readdir]+=" $rd"; META[$c,unlink]+=" $ul"
    done
done
fmedian() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '| %-7s | %8s | %14s | %14s |\n' op native "vhostfsd" "passthrough_hp"
printf '|%s|%s|%s|%s|\n' --------- ---------- ---------------- ----------------
for op in create stat readdir unlink; do
    printf '| %-7s | %8s | %14s | %14s |\n' "$op" \
        "$(echo "${META[native,$op]}" | fmedian)" "$(echo "${META[no-pt,$op]}" | fmedian)" \
        "$(echo "${META[hp,$op]}" | fmedian)"
done
