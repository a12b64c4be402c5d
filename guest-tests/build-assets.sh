#!/bin/bash
# Build the guest assets from Debian packages, cached in guest-tests/.cache (a second run does
# nothing but check):
#   .cache/vmlinuz                   Debian linux-image-6.12 (bookworm-backports), virtio-fs built in
#   .cache/qemu-7.2/                 QEMU 7.2 (bookworm) unpacked; QEMU 10.0 is the system one
#   .cache/trixie/                   QEMU 11.1 in a trixie chroot (build-qemu11.sh), for DAX
#   .cache/fio                       static fio built from Debian's fio source
#   .cache/checker                   static guest checker (guest-tests/checker, Rust)
#   .cache/initramfs-base.cpio.gz    busybox-static + fio + checker
#   .cache/initramfs.cpio.gz         base + /init and the workload scripts of guest-tests/guest
# Needs install-deps.sh first (root: apt). Set REBUILD=1 to rebuild everything.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE="$HERE/.cache"
mkdir -p "$CACHE"
JOBS=$(nproc)
log() { echo "build-assets: $*" >&2; }
if [ "${REBUILD:-0}" = 1 ]; then
    rm -rf "$CACHE/vmlinuz" "$CACHE/qemu-7.2" "$CACHE/fio" "$CACHE/checker" "$CACHE"/initramfs*
fi

# apt-get download runs as _apt when it can; give it a directory it may write to.
download() { # dir pkg...
    local dir=$1; shift
    mkdir -p "$dir"; chmod 777 "$dir"
    (cd "$dir" && apt-get download -q "$@" >/dev/null)
}

# --- guest kernel --------------------------------------------------------------------------
if [ ! -s "$CACHE/vmlinuz" ]; then
    # The newest 6.12 image the bookworm-backports meta-package points to; unsigned if available.
    img=$(apt-cache depends linux-image-6.12-amd64 | awk '/Depends: linux-image-6.12/{print $2; exit}')
    [ -n "$img" ] || { log "linux-image-6.12-amd64 not found: is bookworm-backports in apt sources? (run install-deps.sh)"; exit 1; }
    log "kernel: $img"
    rm -rf "$CACHE/kernel-dl"
    download "$CACHE/kernel-dl" "$img-unsigned" 2>/dev/null || download "$CACHE/kernel-dl" "$img"
    deb=$(ls "$CACHE"/kernel-dl/linux-image-*.deb | head -n1)
    mkdir -p "$CACHE/kernel-dl/x"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$CACHE/kernel-dl/x" --wildcards './boot/vmlinuz-*' './boot/config-*'
    cp "$CACHE"/kernel-dl/x/boot/config-* "$CACHE/kernel.config"
    for opt in CONFIG_VIRTIO_FS CONFIG_FUSE_DAX CONFIG_VIRTIO_PCI; do
        grep -q "^$opt=y" "$CACHE/kernel.config" || { log "kernel: $opt is not built in"; exit 1; }
    done
    basename "$CACHE"/kernel-dl/x/boot/vmlinuz-* | sed 's/^vmlinuz-//' > "$CACHE/kernel.version"
    cp "$CACHE"/kernel-dl/x/boot/vmlinuz-* "$CACHE/vmlinuz.tmp" && mv "$CACHE/vmlinuz.tmp" "$CACHE/vmlinuz"
    rm -rf "$CACHE/kernel-dl"
fi
log "kernel: $(cat "$CACHE/kernel.version") ok"

# --- QEMU 7.2 (bookworm), next to the system QEMU 10.0 ---------------------------------------
# The binary runs with the system's shared libraries (all from bookworm), its own data dir
# (-L .cache/qemu-7.2/usr/share/qemu -L /usr/share/seabios) and its own modules (accel-tcg is
# a module in Debian's build: QEMU_MODULE_DIR=.cache/qemu-7.2/usr/lib/x86_64-linux-gnu/qemu).
v72() { apt-cache madison "$1" | awk -F'|' '$2 ~ /1:7\.2/ {gsub(/ /,"",$2); print $2}' | sort -V | tail -n1; }
if [ ! -x "$CACHE/qemu-7.2/usr/bin/qemu-system-x86_64" ] ||
   [ ! -e "$CACHE/qemu-7.2/usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so" ]; then
    ver=$(v72 qemu-system-x86); dver=$(v72 qemu-system-data); cver=$(v72 qemu-system-common)
    [ -n "$ver" ] && [ -n "$dver" ] && [ -n "$cver" ] || { log "QEMU 7.2 not found in apt sources"; exit 1; }
    log "qemu 7.2: qemu-system-x86=$ver qemu-system-data=$dver qemu-system-common=$cver"
    rm -rf "$CACHE/qemu-7.2" "$CACHE/qemu-dl"
    download "$CACHE/qemu-dl" "qemu-system-x86=$ver" "qemu-system-data=$dver" "qemu-system-common=$cver"
    mkdir -p "$CACHE/qemu-7.2.tmp"
    for d in "$CACHE"/qemu-dl/*.deb; do dpkg-deb -x "$d" "$CACHE/qemu-7.2.tmp"; done
    mv "$CACHE/qemu-7.2.tmp" "$CACHE/qemu-7.2"
    rm -rf "$CACHE/qemu-dl"
fi
if ldd "$CACHE/qemu-7.2/usr/bin/qemu-system-x86_64" | grep -q 'not found'; then
    log "qemu 7.2: missing shared libraries:"; ldd "$CACHE/qemu-7.2/usr/bin/qemu-system-x86_64" | grep 'not found' >&2
    exit 1
fi
log "qemu: $("$CACHE/qemu-7.2/usr/bin/qemu-system-x86_64" --version | head -n1) ok"

# --- QEMU 11.1 (trixie-backports, in a chroot): vhost-user shared memory for DAX -------------
"$HERE/build-qemu11.sh"

# --- static fio ------------------------------------------------------------------------------
if [ ! -x "$CACHE/fio" ]; then
    rm -rf "$CACHE/fio-src"; mkdir -p "$CACHE/fio-src"; chmod 777 "$CACHE/fio-src"
    (cd "$CACHE/fio-src" && apt-get source -q --download-only fio >/dev/null)
    dsc=$(ls "$CACHE"/fio-src/fio_*.dsc | head -n1)
    (cd "$CACHE/fio-src" && dpkg-source --no-check -x "$dsc" src >/dev/null 2>&1)
    log "fio: building $(basename "$dsc" .dsc) (static)"
    (cd "$CACHE/fio-src/src" &&
        ./configure --build-static --disable-native --disable-numa --disable-rdma --disable-rados \
            --disable-rbd --disable-http --disable-gfapi --disable-libnfs --disable-pmem \
            --disable-xnvme --disable-libzbc --disable-tcmalloc --disable-dfs > ../configure.log &&
        grep -Eq '^Linux AIO support +yes' ../configure.log || { cat ../configure.log >&2; exit 1; }
        make -j"$JOBS" fio > ../make.log 2>&1 || { tail -n 30 ../make.log >&2; exit 1; })
    # io_uring is built in on Linux (no liburing needed); make sure the engine is there.
    "$CACHE/fio-src/src/fio" --enghelp | grep -qw io_uring || { log "fio: no io_uring engine"; exit 1; }
    "$CACHE/fio-src/src/fio" --enghelp | grep -qw libaio || { log "fio: no libaio engine"; exit 1; }
    is_static() { ! readelf -l "$1" | grep -q INTERP; }
    is_static "$CACHE/fio-src/src/fio" || { log "fio: not a static binary"; exit 1; }
    strip -o "$CACHE/fio.tmp" "$CACHE/fio-src/src/fio" && mv "$CACHE/fio.tmp" "$CACHE/fio"
    rm -rf "$CACHE/fio-src"
fi
log "fio: $("$CACHE/fio" --version) ok"

# --- guest checker (Rust, static glibc) -------------------------------------------------------
# cargo decides itself whether anything changed.
log "checker: cargo build"
CARGO_TARGET_DIR="$CACHE/checker-target" RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --quiet --release --manifest-path "$HERE/checker/Cargo.toml" \
    --target x86_64-unknown-linux-gnu
bin="$CACHE/checker-target/x86_64-unknown-linux-gnu/release/vhostfsd-guest-checker"
if [ ! -x "$CACHE/checker" ] || [ "$bin" -nt "$CACHE/checker" ]; then
    cp "$bin" "$CACHE/checker.tmp" && mv "$CACHE/checker.tmp" "$CACHE/checker"
    rm -f "$CACHE/initramfs-base.cpio.gz"
fi
is_static() { ! readelf -l "$1" | grep -q INTERP; }
is_static "$CACHE/checker" || { log "checker: not a static binary"; exit 1; }

# --- initramfs -------------------------------------------------------------------------------
BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] && is_static "$BUSYBOX" || { log "$BUSYBOX is not busybox-static (install-deps.sh)"; exit 1; }
if [ ! -s "$CACHE/initramfs-base.cpio.gz" ] || [ "$CACHE/fio" -nt "$CACHE/initramfs-base.cpio.gz" ]; then
    root="$CACHE/initramfs-root"
    rm -rf "$root"; mkdir -p "$root"/{bin,sbin,dev,proc,sys,mnt,tmp,etc,root}
    cp "$BUSYBOX" "$root/bin/busybox"
    cp "$CACHE/fio" "$CACHE/checker" "$root/bin/"
    # The kernel opens /dev/console before /init runs.
    mknod -m 600 "$root/dev/console" c 5 1
    mknod -m 666 "$root/dev/null" c 1 3
    (cd "$root" && find . | sort | cpio -o -H newc --quiet -R 0:0 | gzip -9) > "$CACHE/initramfs-base.cpio.gz.tmp"
    mv "$CACHE/initramfs-base.cpio.gz.tmp" "$CACHE/initramfs-base.cpio.gz"
    rm -rf "$root"
fi
# The scripts go in a second cpio archive appended to the first (the kernel unpacks both), so
# editing a workload costs no rebuild of the base.
newest=$(find "$HERE/guest" -type f -newer "$CACHE/initramfs.cpio.gz" 2>/dev/null | head -n1 || true)
if [ ! -s "$CACHE/initramfs.cpio.gz" ] || [ -n "$newest" ] ||
   [ "$CACHE/initramfs-base.cpio.gz" -nt "$CACHE/initramfs.cpio.gz" ]; then
    (cd "$HERE/guest" && find . | sort | cpio -o -H newc --quiet -R 0:0 | gzip -9) > "$CACHE/scripts.cpio.gz"
    cat "$CACHE/initramfs-base.cpio.gz" "$CACHE/scripts.cpio.gz" > "$CACHE/initramfs.cpio.gz.tmp"
    mv "$CACHE/initramfs.cpio.gz.tmp" "$CACHE/initramfs.cpio.gz"
fi
log "initramfs: $(du -h "$CACHE/initramfs.cpio.gz" | cut -f1) ok"
