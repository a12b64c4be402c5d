"""Demos: a guest writes a file the host reads (or an interactive shell), and DAX against no
DAX with the daemon's request counters."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

from harness.checks import request_counts
from harness.daemon import Daemon, dax_daemon, daemon_info
from harness.env import RESULT_RE, WORKLOAD_TIMEOUT, log
from harness.qemu import Qemu, accel, dax_qemu, qemu_errors, run_qemu
from harness.share import DAX_GUEST_MMAP, DAX_HOST_MMAP, pattern

def demo(args, qemus, share: Path, interactive: bool) -> int:
    info = daemon_info(Path(args.daemon))
    share.mkdir(parents=True, exist_ok=True)
    qemu = qemus[args.qemu]
    with tempfile.TemporaryDirectory(prefix="vhostfsd-demo-") as wd:
        wd = Path(wd)
        d = Daemon(info, wd / "vhostfsd.sock", share, None, "auto", os.environ.get("SANDBOX", "none"),
                   True, False, 1, wd / "daemon.log")
        log(f"{info.binary} serves {share} (tag myfs); booting QEMU {qemu.version} ({accel(qemu)}), a few seconds...")
        try:
            d.start()
            rc, secs = run_qemu(qemu, wd / "vhostfsd.sock", "myfs", 1, "shell" if interactive else "demo", {},
                                wd / "console.log", WORKLOAD_TIMEOUT["demo"], interactive=interactive)
        except RuntimeError as e:
            log(str(e))
            rc = 1
        finally:
            d.stop()
        if not interactive:
            text = (wd / "console.log").read_text(errors="replace") if (wd / "console.log").exists() else ""
            print("\n".join(l for l in text.splitlines() if "vhostfsd-guest" in l or not l.startswith("[")))
            hello = share / "hello-from-guest.txt"
            if hello.exists() and RESULT_RE.search(text) and "PASS" in text:
                log(f"guest wrote {hello} ({secs:.0f}s); on the host it reads:")
                print(hello.read_text(), end="")
                return 0
            log("demo failed; daemon log:")
            print((wd / "daemon.log").read_text(errors="replace")[-3000:])
            return 1
        return 0 if rc == 0 else 1



def dax_demo(share: Path, qemus: dict[str, Qemu], workroot: Path) -> int:
    """demo.sh --dax: one daemon with a DAX window; the guest does the same file I/O with
    -o dax=always and then (second boot) without; the daemon logs its request counters
    (SIGUSR1) when the I/O starts and ends, and the requests between are printed side by side."""
    qemu = dax_qemu(qemus, "the DAX demo")
    if qemu is None:
        return 1
    share.mkdir(parents=True, exist_ok=True)
    name, size, seed = DAX_HOST_MMAP
    (share / name).write_bytes(pattern(size, seed))
    wd = workroot / "dax-demo"
    wd.mkdir()
    d = dax_daemon(wd, share, "64M", os.environ.get("SANDBOX", "none"))
    dlog = d.logfile
    log(f"$ {' '.join(d.cmd)}")
    d.start()
    deltas: dict[str, dict[str, int]] = {}
    problems: list[str] = []
    try:
        for mode, opts in (("DAX", "dax=always"), ("no DAX", "")):
            sync = share / ".demo"
            shutil.rmtree(sync, ignore_errors=True)
            console = wd / f"console-{mode.replace(' ', '')}.log"
            log(f"booting QEMU {qemu.version} ({accel(qemu)}): "
                f"mount -t virtiofs myfs /mnt{' -o ' + opts if opts else ''}")
            result: list = []
            t = threading.Thread(target=lambda: result.append(run_qemu(
                qemu, wd / "s.sock", "myfs", 1, "daxdemo", {}, console,
                WORKLOAD_TIMEOUT["daxdemo"], mountopts=opts, dax=True)))
            t.start()
            counts = []
            for step in ("io-start", "io-end"):
                while t.is_alive() and not (sync / step).exists():
                    time.sleep(0.05)
                if not t.is_alive():
                    break
                n = dlog.read_text(errors="replace").count("requests served:")
                d.proc.send_signal(signal.SIGUSR1)
                while dlog.read_text(errors="replace").count("requests served:") == n:
                    time.sleep(0.05)
                counts.append(request_counts(dlog.read_text(errors="replace")))
                (sync / f"{step}-ack").touch()
            t.join()
            text = console.read_text(errors="replace") if console.exists() else ""
            print("\n".join(l for l in text.splitlines() if "vhostfsd-guest" in l or l.startswith("checker:")))
            qlog = console.with_suffix(".qemu.log")
            errs = qemu_errors(qlog.read_text(errors="replace")) if qlog.exists() else []
            if len(counts) != 2 or "VHOSTFSD-GUEST-RESULT: PASS" not in text or errs:
                problems.append(f"{mode} boot failed (QEMU status {result[0][0] if result else None}"
                                f"{'; QEMU: ' + errs[0] if errs else ''}); console: {console}")
                break
            deltas[mode] = {k: v - counts[0].get(k, 0) for k, v in counts[1].items() if v > counts[0].get(k, 0)}
            m = re.search(r"GUEST-SHA256 (\w+) demo.bin", text)
            host_sum = hashlib.sha256((share / "demo.bin").read_bytes()).hexdigest()
            if not m or m.group(1) != host_sum:
                problems.append(f"{mode}: the host reads other bytes in demo.bin than the guest wrote")
            else:
                log(f"{mode}: the host reads the 8 MiB the guest wrote (sha256 {host_sum[:16]}...)")
            if mode == "DAX":
                gname, gsize, gseed = DAX_GUEST_MMAP
                if (share / gname).read_bytes() != pattern(gsize, gseed):
                    problems.append(f"{gname}: the guest's mmap writes did not reach the host")
                else:
                    log(f"DAX: the host reads the {gsize >> 20} MiB the guest wrote through mmap ({gname})")
    finally:
        d.stop()
    if problems:
        for p in problems:
            log(p)
        print("\n".join(dlog.read_text(errors="replace").splitlines()[-30:]))
        return 1
    ops = sorted(set(deltas["DAX"]) | set(deltas["no DAX"]),
                 key=lambda k: -(deltas["DAX"].get(k, 0) + deltas["no DAX"].get(k, 0)))
    print("\nrequests that reached vhostfsd during the guest's file I/O "
          "(per-opcode counters, SIGUSR1 before and after):")
    print(f"  {'opcode':16} {'DAX':>8} {'no DAX':>8}")
    for k in ops:
        print(f"  {k:16} {deltas['DAX'].get(k, 0):8} {deltas['no DAX'].get(k, 0):8}")
    rw = deltas["DAX"].get("READ", 0) + deltas["DAX"].get("WRITE", 0)
    if rw or not deltas["DAX"].get("SETUPMAPPING"):
        log(f"DAX did not take the data path: READ+WRITE={rw}, SETUPMAPPING={deltas['DAX'].get('SETUPMAPPING', 0)}")
        return 1
    log("with DAX the guest's reads, writes and mmap sent no READ or WRITE to the daemon: "
        "they went through the window straight to the host file")
    return 0
