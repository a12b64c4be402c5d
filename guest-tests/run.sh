#!/bin/bash
# Guest tests: builds the guest assets if needed, then runs the case matrix (runner.py).
#   guest-tests/run.sh [--matrix ci|full|quick] [--case SUBSTR] [--list] [-v]
# Environment: VHOSTFSD=path/to/daemon (default target/release/vhostfsd, else target/debug),
# SANDBOXES="none namespace", QEMUS="10.0 7.2", ACCEL=tcg|kvm, KEEP=1 (keep work dirs).
# Must run as root; install-deps.sh installs what it needs on a fresh Debian bookworm.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" != 0 ]; then
    echo "run.sh: must run as root (QEMU, the daemon's sandbox, chown in the guest)" >&2
    exit 1
fi
"$HERE/build-assets.sh" 2>&1 | sed -u 's/^/  /' >&2
exec python3 "$HERE/runner.py" "$@"
