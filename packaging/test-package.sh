#!/bin/bash
# CI for the distribution package (run by scripts/test.sh after the release build and the
# guest tests; needs root, Debian bookworm, the guest assets):
#   1. builds the .deb with cargo-deb (installed into ~/.cargo/bin if missing) from
#      target/release/vhostfsd, and the RPM with rpmbuild from a git archive of HEAD;
#   2. installs the .deb on this machine (apt resolves its dependencies);
#   3. checks the installed files: --version (version and commit), --print-capabilities and
#      the vhost-user descriptor (parses, same type, names the installed binary), the man page,
#      completions, units (systemd-analyze verify), docs and example config;
#   4. boots a guest against the share started by the installed unit's command line
#      (guest-tests/packaged.py unit) and a guest that libvirt starts with vhostfsd picked from
#      the descriptor (guest-tests/packaged.py libvirt);
#   5. removes the package again (purge), checking nothing is left behind.
# SKIP_RPM=1 skips the RPM build, SKIP_LIBVIRT=1 the libvirt boot.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

CARGO_DEB_VERSION=3.8.0
PKG=vhostfsd
BIN=/usr/libexec/vhostfsd
DESCRIPTOR=/usr/share/qemu/vhost-user/50-vhostfsd.json

step() { printf '\n--- package: %s (%s)\n' "$*" "$(date +%T)"; }
fail() { echo "test-package.sh: FAIL: $*" >&2; exit 1; }

if [ "$(id -u)" != 0 ]; then
    echo "test-package.sh: must run as root (dpkg, libvirt, the daemon's sandbox)" >&2
    exit 1
fi
[ -x target/release/vhostfsd ] || fail "target/release/vhostfsd missing: cargo build --release --locked first"

step "cargo-deb $CARGO_DEB_VERSION"
if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $CARGO_DEB_VERSION" ]; then
    cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION"
fi

step "build the .deb (cargo deb --no-build)"
rm -rf target/debian
cargo deb --no-build --locked --package vhostfsd
DEB=$(ls target/debian/${PKG}_*.deb)
dpkg-deb --info "$DEB"
dpkg-deb --contents "$DEB"

if [ "${SKIP_RPM:-0}" != 1 ]; then
    step "build the RPM (rpmbuild from git archive HEAD)"
    version=$(cargo metadata --no-deps --format-version 1 --locked |
              python3 -c 'import json,sys; print([p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]=="vhostfsd"][0])')
    spec_version=$(rpmspec -q --qf '%{VERSION}\n' packaging/rpm/vhostfsd.spec 2>/dev/null | head -n1)
    [ "$version" = "$spec_version" ] || fail "packaging/rpm/vhostfsd.spec has Version $spec_version, Cargo.toml $version"
    rpmlint packaging/rpm/vhostfsd.spec
    top=$(mktemp -d /tmp/vhostfsd-rpmbuild.XXXXXX)
    mkdir -p "$top/SOURCES"
    git archive --prefix="vhostfsd-$version/" -o "$top/SOURCES/vhostfsd-$version.tar.gz" HEAD
    # --nodeps: Debian's rpm database is empty, so BuildRequires (cargo, rust) cannot be
    # checked; cargo comes from rustup here. The tree's target dir reuses the compiled crates
    # (only vhostfsd itself is built again, from the archive).
    CARGO_TARGET_DIR="$REPO/target" rpmbuild -bb --nodeps --define "_topdir $top" \
        --define "commit $(git rev-parse --short=12 HEAD)" packaging/rpm/vhostfsd.spec
    RPM=$(ls "$top"/RPMS/*/vhostfsd-"$version"-*.rpm)
    # Whole outputs first: grep -q on a pipe would stop rpm early (SIGPIPE, and pipefail).
    rpm_files=$(rpm -qlp "$RPM")
    rpm_provides=$(rpm -qp --provides "$RPM")
    echo "$rpm_files"
    grep -qx 'vhostuser-backend(fs)' <<<"$rpm_provides" || fail "the RPM lacks Provides: vhostuser-backend(fs)"
    for f in "$BIN" "$DESCRIPTOR" /usr/share/man/man8/vhostfsd.8 /usr/lib/systemd/system/vhostfsd@.service \
             /usr/lib/systemd/system/vhostfsd@.socket /usr/share/doc/vhostfsd/examples/vhostfsd.conf \
             /usr/share/doc/vhostfsd/user-guide.md; do
        grep -qx "$f" <<<"$rpm_files" || fail "the RPM does not install $f"
    done
    rpmlint "$RPM" || true   # informational: rpmlint's Fedora policy does not fit a Debian build host
    rm -rf "$top"
fi

step "install the .deb"
cleanup() {
    if [ -n "$(dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep installed)" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "$PKG" >/dev/null || true
    fi
}
trap cleanup EXIT
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$REPO/$DEB" >/dev/null
dpkg -L "$PKG"

step "installed files"
version_line=$("$BIN" --version)
echo "$version_line"
commit=$(git rev-parse --short=12 HEAD)
[[ "$version_line" == *"(commit $commit)" ]] || fail "--version does not name commit $commit"
caps=$("$BIN" --print-capabilities)
echo "$caps"
CAPS="$caps" python3 - "$DESCRIPTOR" "$BIN" <<'PY'
import json, os, sys
descriptor, binary = sys.argv[1], sys.argv[2]
d = json.load(open(descriptor))
caps = json.loads(os.environ["CAPS"])
assert d["binary"] == binary, f"descriptor binary {d['binary']} != {binary}"
assert os.access(d["binary"], os.X_OK), f"{d['binary']} is not executable"
assert d["type"] == caps["type"] == "fs", f"descriptor type {d['type']}, capabilities {caps['type']}"
assert "separate-options" in caps.get("features", []), caps
print(f"descriptor {descriptor}: type {d['type']}, binary {d['binary']}; capabilities {caps}")
PY
for f in /usr/share/man/man8/vhostfsd.8.gz \
         /usr/share/bash-completion/completions/vhostfsd \
         /usr/share/zsh/vendor-completions/_vhostfsd \
         /usr/share/fish/vendor_completions.d/vhostfsd.fish \
         /usr/lib/systemd/system/vhostfsd@.service /usr/lib/systemd/system/vhostfsd@.socket \
         /usr/share/doc/vhostfsd/examples/vhostfsd.conf \
         /usr/share/doc/vhostfsd/user-guide.md /usr/share/doc/vhostfsd/flags.md; do
    [ -s "$f" ] || fail "$f missing or empty"
done
[ -d /etc/vhostfsd ] || fail "the .deb did not create /etc/vhostfsd (packaging/debian/postinst)"
zcat /usr/share/man/man8/vhostfsd.8.gz | cmp - packaging/generated/vhostfsd.8 || fail "installed man page differs"
bash -c 'source /usr/share/bash-completion/completions/vhostfsd && complete -p vhostfsd' ||
    fail "the bash completion does not register"

step "systemd-analyze verify"
verify_out=$(systemd-analyze verify vhostfsd@ci.socket vhostfsd@ci.service 2>&1) || {
    echo "$verify_out"; fail "systemd-analyze verify"; }
# Without systemd as pid 1 verify still parses every directive; unknown ones are warnings.
if echo "$verify_out" | grep -E 'vhostfsd@' ; then fail "systemd-analyze verify warns about the units"; fi
echo "units verified"

step "guest against the installed unit's command line (socket activation, READY=1)"
python3 guest-tests/packaged.py unit

if [ "${SKIP_LIBVIRT:-0}" != 1 ]; then
    step "libvirt starts vhostfsd from the descriptor"
    # CI machines are containers without systemd: QEMU runs as root without a private /dev
    # namespace or security labels, logs go to files (no virtlogd); virtiofsd_debug makes
    # libvirt pass --log-level debug. packaged.py starts libvirtd if nothing answers.
    if ! grep -q '^# vhostfsd CI' /etc/libvirt/qemu.conf; then
        cat >> /etc/libvirt/qemu.conf <<'CONF'
# vhostfsd CI (packaging/test-package.sh)
user = "root"
group = "root"
security_driver = "none"
stdio_handler = "file"
namespaces = [ ]
virtiofsd_debug = 1
CONF
        if pid=$(cat /run/libvirtd.pid 2>/dev/null) && kill -0 "$pid" 2>/dev/null; then
            kill "$pid"   # restarted by packaged.py with the new settings
            sleep 2
        fi
    fi
    python3 guest-tests/packaged.py libvirt
fi

step "purge the package"
trap - EXIT
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "$PKG" >/dev/null
for f in "$BIN" "$DESCRIPTOR" /usr/lib/systemd/system/vhostfsd@.service /etc/vhostfsd; do
    [ ! -e "$f" ] || fail "$f left behind after purge"
done
echo "test-package.sh: ok"
