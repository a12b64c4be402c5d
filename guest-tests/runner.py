#!/usr/bin/env python3
"""Guest tests for vhostfsd: a real Linux guest under QEMU mounting the share.

Each case starts the daemon on a fresh shared directory, boots QEMU with the guest kernel and the
busybox initramfs (built by build-assets.sh) running one workload, and checks the result in the
guest (the workload's PASS/FAIL line) and on the host (files the guest wrote, verified byte for
byte; the read-only export left unchanged). Python 3.11 standard library only; must run as root.

    runner.py [--matrix ci|full|quick] [--case SUBSTR]... [--list] [-v]
    runner.py --compare [--rounds N] [--other-daemon PATH]        (used by compare.sh)
    runner.py --dax-bench [--rounds N]                            (DAX against no DAX)
    runner.py --demo|--shell DIR                                  (used by demo.sh)
    runner.py --dax-demo DIR                                      (demo.sh --dax, QEMU 11.1)

Environment: VHOSTFSD (daemon binary), SANDBOXES ("none namespace chroot"), QEMUS ("10.0 7.2 11.1"),
ACCEL (tcg|kvm, default: kvm only if a probe boot works), GT_TMPDIR (work dirs), KEEP=1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from harness.bench import compare, dax_bench, dax_hazard
from harness.daemon import default_daemon
from harness.demo import dax_demo, demo
from harness.env import CACHE, INITRD, KERNEL, log
from harness.matrix import run_matrix
from harness.qemu import find_qemus


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--matrix", default="ci", choices=["ci", "full", "quick"])
    ap.add_argument("--case", action="append", default=[], help="run only cases whose name contains this")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true", help="print console and daemon log of passing cases too")
    ap.add_argument("--daemon", default=str(default_daemon()))
    ap.add_argument("--compare", action="store_true")
    ap.add_argument("--dax-bench", action="store_true", help="fio with and without DAX (QEMU 11.1)")
    ap.add_argument("--dax-hazard", action="store_true", help="host truncates a file the guest maps")
    ap.add_argument("--other-daemon", default=str(CACHE / "cargo-root/bin/virtiofsd"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runtime", type=int, default=5)
    ap.add_argument("--size", default="32M")
    ap.add_argument("--cache", default="auto")
    ap.add_argument("--qemu", default=None)
    ap.add_argument("--demo", metavar="DIR")
    ap.add_argument("--shell", metavar="DIR")
    ap.add_argument("--dax-demo", metavar="DIR", help="demo.sh --dax: DAX against no DAX, counters (QEMU 11.1)")
    args = ap.parse_args()

    if os.geteuid() != 0:
        sys.exit("runner: must run as root (the daemon needs it for its sandbox and ownership changes)")
    for f in (KERNEL, INITRD):
        if not f.exists():
            sys.exit(f"runner: {f} missing: run guest-tests/build-assets.sh first")
    qemus = find_qemus()
    want_qemus = os.environ.get("QEMUS", "10.0 7.2 11.1").split()
    sandboxes = os.environ.get("SANDBOXES", "none namespace chroot").split()
    args.qemu = args.qemu or want_qemus[0]

    # SIGTERM/SIGHUP (CI cancel) go through the same cleanup as Ctrl-C.
    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    workroot = Path(tempfile.mkdtemp(prefix="vhostfsd-gt-", dir=os.environ.get("GT_TMPDIR")))
    rc = 1
    try:
        if args.compare:
            rc = compare(args, qemus, workroot)
        elif args.dax_bench:
            rc = dax_bench(args, qemus, workroot)
        elif args.dax_hazard:
            rc = dax_hazard(args, qemus, workroot)
        elif args.dax_demo:
            rc = dax_demo(Path(args.dax_demo), qemus, workroot)
        elif args.demo or args.shell:
            rc = demo(args, qemus, Path(args.demo or args.shell), interactive=bool(args.shell))
        else:
            rc = run_matrix(args, qemus, want_qemus, sandboxes, workroot)
        return rc
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        # Passing cases remove their own directories; what is left belongs to failures.
        if rc == 0 and not os.environ.get("KEEP"):
            shutil.rmtree(workroot, ignore_errors=True)
        elif any(workroot.iterdir()):
            log(f"work files (logs, shared dirs) kept in {workroot}")
        else:
            workroot.rmdir()


if __name__ == "__main__":
    sys.exit(main())
