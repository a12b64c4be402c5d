#!/bin/bash
# Install everything the guest tests need on a fresh Debian bookworm machine (as root).
# Idempotent: re-running only checks that the packages are present.
#
# - bookworm-backports (for the guest kernel 6.12 and QEMU 10.0) and deb-src lines (for fio's
#   source) are added to apt's sources, reusing the host of the configured Debian mirror.
# - QEMU 10.0 (bookworm-backports) is installed system-wide (bookworm-backports' qemu-utils,
#   often preinstalled, Breaks the 7.2 qemu-system-common); QEMU 7.2 (bookworm) is unpacked into
#   guest-tests/.cache by build-assets.sh and runs with the same shared libraries. QEMU 11.1
#   (DAX) comes from a trixie chroot that build-qemu11.sh makes with debootstrap.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    echo "install-deps.sh: must run as root (apt-get)" >&2
    exit 1
fi

# The mirror host already configured (deb822 or one-line format), default deb.debian.org.
mirror_host() {
    local uri
    uri=$( { grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}';
             grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '{print $2}'; } |
           grep -E '/debian/?$' | head -n1 || true)
    echo "${uri:-http://deb.debian.org/debian}"
}

MIRROR=$(mirror_host)
MIRROR=${MIRROR%/}
LIST=/etc/apt/sources.list.d/vhostfsd-guest-tests.list
# apt refuses two entries for the same source with different Signed-By values: match deb822 files.
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
OPTS=""
if grep -qsh "^Signed-By: $KEYRING" /etc/apt/sources.list.d/*.sources; then OPTS="[signed-by=$KEYRING] "; fi
changed=0
if ! grep -rqsE 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "deb $OPTS$MIRROR bookworm-backports main" >> "$LIST"
    changed=1
fi
if ! grep -rqsE '^(deb-src |Types:.*deb-src)' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "deb-src $OPTS$MIRROR bookworm main" >> "$LIST"
    changed=1
fi

BPO_PKGS=(qemu-system-x86 qemu-system-data qemu-system-common)   # QEMU 10.0
# libvirt 11.3 for packaging/test-package.sh (it drives QEMU 10.0 and builds virtiofsd command
# lines with --shared-dir etc.). Named pkg/bookworm-backports, not -t: libvirt-daemon-system
# and -t would pull systemd 254 from backports too.
LIBVIRT_BPO_PKGS=(libvirt0 libvirt-common libvirt-clients libvirt-daemon libvirt-daemon-common
                  libvirt-daemon-log libvirt-daemon-driver-qemu)
PKGS=(
    seabios ipxe-qemu
    busybox-static cpio gzip zstd xz-utils
    build-essential pkg-config libaio-dev zlib1g-dev dpkg-dev   # static fio
    libseccomp-dev libcap-ng-dev       # virtiofsd (compare.sh)
    python3 coreutils util-linux procps
    debootstrap                        # QEMU 11.1 chroot for the DAX case (build-qemu11.sh)
    rpm rpmlint man-db                 # packaging/test-package.sh: RPM build, man page check
    uidmap                             # newuidmap/newgidmap: tests/id_mapping.rs, unprivileged --uid-map
)
missing=()
bpo_missing=()
for p in "${BPO_PKGS[@]}"; do
    dpkg-query -W -f='${Status} ${Version}' "$p" 2>/dev/null | grep -q '^install ok installed 1:10' || bpo_missing+=("$p")
done
libvirt_missing=()
for p in "${LIBVIRT_BPO_PKGS[@]}"; do
    dpkg-query -W -f='${Status} ${Version}' "$p" 2>/dev/null | grep -q '^install ok installed 11\.' || libvirt_missing+=("$p")
done
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
done
stamp=/var/lib/apt/periodic/vhostfsd-guest-tests-update
if [ "$changed" = 1 ] || [ ! -e "$stamp" ] || [ ${#missing[@]} -gt 0 ] || [ ${#bpo_missing[@]} -gt 0 ] ||
   [ ${#libvirt_missing[@]} -gt 0 ]; then
    apt-get update -qq
    mkdir -p "$(dirname "$stamp")" && touch "$stamp"
fi
export DEBIAN_FRONTEND=noninteractive
if [ ${#bpo_missing[@]} -gt 0 ]; then
    echo "install-deps.sh: installing from bookworm-backports: ${bpo_missing[*]}"
    apt-get install -y -qq --no-install-recommends -t bookworm-backports "${bpo_missing[@]}"
fi
if [ ${#libvirt_missing[@]} -gt 0 ]; then
    echo "install-deps.sh: installing from bookworm-backports: ${libvirt_missing[*]}"
    apt-get install -y -qq --no-install-recommends "${libvirt_missing[@]/%//bookworm-backports}"
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps.sh: installing ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v cargo >/dev/null || echo "install-deps.sh: note: cargo (rustup) is needed for the checker and the daemon" >&2
echo "install-deps.sh: ok"
