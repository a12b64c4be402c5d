#!/bin/bash
# Demo: serve a host directory with vhostfsd and boot a small Linux guest that mounts it at /mnt.
#   guest-tests/demo.sh [DIR]          interactive busybox shell on the console (exit powers off;
#                                      Ctrl-A X kills QEMU)
#   guest-tests/demo.sh --demo [DIR]   (or stdin not a terminal) the guest writes
#                                      DIR/hello-from-guest.txt, powers off, and the file is shown
#   guest-tests/demo.sh --dax [DIR]    DAX with QEMU 11.1: the guest writes, reads and mmaps files
#                                      once with -o dax=always and once without; the daemon's
#                                      per-opcode counters show READ/WRITE stay out of the daemon
#                                      with DAX (docs/dax.md)
# DIR defaults to a new temporary directory. Builds what it needs (apt packages, guest assets,
# cargo build --release); set VHOSTFSD to use another daemon binary. Must run as root.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
mode=shell
[ -t 0 ] || mode=demo
case "${1:-}" in
    --demo) mode=demo; shift ;;
    --dax) mode=dax-demo; shift ;;
esac
if [ "$(id -u)" != 0 ]; then
    echo "demo.sh: must run as root (apt-get, QEMU, the daemon)" >&2
    exit 1
fi
DIR=${1:-$(mktemp -d /tmp/vhostfsd-demo-share.XXXXXX)}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

# A failure here stops the demo with the step's own message. build-assets.sh also builds
# QEMU 11.1 (build-qemu11.sh: a debootstrap trixie chroot) for --dax.
"$HERE/install-deps.sh"
"$HERE/build-assets.sh"
if [ -z "${VHOSTFSD:-}" ]; then
    echo "demo.sh: cargo build --release" >&2
    cargo build --release --quiet --manifest-path "$REPO/Cargo.toml"
    VHOSTFSD="$REPO/target/release/vhostfsd"
fi
export VHOSTFSD
[ -e "$DIR/README-from-host.txt" ] || echo "This file was written on the host before boot." > "$DIR/README-from-host.txt"
exec python3 "$HERE/runner.py" "--$mode" "$DIR"
