#!/bin/bash
# QEMU 11.1 for the DAX guest case, cached in guest-tests/.cache/trixie: a Debian trixie chroot
# made with debootstrap --variant=minbase, with qemu-system-x86 from trixie-backports inside.
# bookworm's newest QEMU (10.0) has no vhost-user SHMEM (shared-memory windows), so DAX needs it.
# The binary runs on the host through the chroot's own dynamic loader (see qemu11_cmd in
# runner), so no mounts or chroot(2) are needed at run time.
# Needs install-deps.sh first (root: debootstrap). Set REBUILD=1 to rebuild.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE="$HERE/.cache"
ROOT="$CACHE/trixie"
log() { echo "build-qemu11: $*" >&2; }
if [ "${REBUILD:-0}" = 1 ]; then rm -rf "$ROOT"; fi

# The mirror host apt already uses (the same rule as install-deps.sh).
mirror_host() {
    local uri
    uri=$( { grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}';
             grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '{print $2}'; } |
           grep -E '/debian/?$' | head -n1 || true)
    echo "${uri:-http://deb.debian.org/debian}"
}

qemu="$ROOT/usr/bin/qemu-system-x86_64"
if [ ! -x "$qemu" ] || [ ! -e "$ROOT/.vhostfsd-complete" ]; then
    command -v debootstrap >/dev/null || { log "debootstrap missing: run install-deps.sh"; exit 1; }
    MIRROR=$(mirror_host); MIRROR=${MIRROR%/}
    log "debootstrap trixie from $MIRROR (a few minutes)"
    rm -rf "$ROOT.tmp"; mkdir -p "$CACHE"
    debootstrap --variant=minbase trixie "$ROOT.tmp" "$MIRROR" > "$CACHE/debootstrap.log" 2>&1 ||
        { tail -n 20 "$CACHE/debootstrap.log" >&2; exit 1; }
    # The archive snapshot reached from these machines has expired Release files.
    echo 'Acquire::Check-Valid-Until "false";' > "$ROOT.tmp/etc/apt/apt.conf.d/99vhostfsd-no-valid-until"
    echo "deb $MIRROR trixie-backports main" > "$ROOT.tmp/etc/apt/sources.list.d/backports.list"
    chroot "$ROOT.tmp" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive chroot "$ROOT.tmp" apt-get install -y -qq --no-install-recommends \
        -t trixie-backports qemu-system-x86 > "$CACHE/qemu11-apt.log" 2>&1 ||
        { tail -n 20 "$CACHE/qemu11-apt.log" >&2; exit 1; }
    chroot "$ROOT.tmp" apt-get clean
    touch "$ROOT.tmp/.vhostfsd-complete"
    mv "$ROOT.tmp" "$ROOT"
fi
ver=$("$ROOT/lib64/ld-linux-x86-64.so.2" --library-path "$ROOT/usr/lib/x86_64-linux-gnu:$ROOT/lib/x86_64-linux-gnu" \
    "$qemu" --version | head -n1)
case "$ver" in
    *" 11."*|*" 1[2-9]."*) log "qemu: $ver ok" ;;
    *) log "qemu: $ver has no vhost-user SHMEM (need >= 11.1)"; exit 1 ;;
esac
