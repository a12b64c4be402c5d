"""QEMU: the versions found on this machine, the accelerator, and one guest boot."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from harness.env import CACHE, INITRD, KERNEL, MEM, log

@dataclasses.dataclass
class Qemu:
    version: str
    binary: Path
    args: list[str]
    env: dict[str, str]


def find_qemus() -> dict[str, Qemu]:
    """QEMU 10.0 is the system one (bookworm-backports); 7.2 is unpacked in .cache."""
    qemus = {}
    sysq = shutil.which("qemu-system-x86_64")
    if sysq:
        v = subprocess.run([sysq, "--version"], capture_output=True, text=True).stdout
        m = re.search(r"version (\d+\.\d+)", v)
        if m:
            qemus[m.group(1)] = Qemu(m.group(1), Path(sysq), [], {})
    q72 = CACHE / "qemu-7.2/usr/bin/qemu-system-x86_64"
    if q72.exists():
        qemus["7.2"] = Qemu(
            "7.2",
            q72,
            ["-L", str(CACHE / "qemu-7.2/usr/share/qemu"), "-L", "/usr/share/seabios"],
            {"QEMU_MODULE_DIR": str(CACHE / "qemu-7.2/usr/lib/x86_64-linux-gnu/qemu")},
        )
    # QEMU 11.1 (trixie-backports, in a debootstrap chroot built by build-qemu11.sh) has the
    # vhost-user shared-memory regions DAX needs; it runs through the chroot's own loader.
    trixie = CACHE / "trixie"
    if (trixie / "usr/bin/qemu-system-x86_64").exists() and (trixie / ".vhostfsd-complete").exists():
        libs = f"{trixie}/usr/lib/x86_64-linux-gnu:{trixie}/lib/x86_64-linux-gnu"
        qemus["11.1"] = Qemu(
            "11.1",
            trixie / "lib64/ld-linux-x86-64.so.2",
            ["--library-path", libs, str(trixie / "usr/bin/qemu-system-x86_64"),
             "-L", str(trixie / "usr/share/qemu"), "-L", str(trixie / "usr/share/seabios")],
            {"QEMU_MODULE_DIR": str(trixie / "usr/lib/x86_64-linux-gnu/qemu")},
        )
    return qemus


def qemu_errors(text: str) -> list[str]:
    """QEMU's error lines (error_report prints "qemu-system-x86_64: ..."); a clean boot has none.
    Warnings are not errors."""
    return [ln.strip() for ln in text.splitlines()
            if re.match(r"\s*qemu-system-x86_64: ", ln) and "warning:" not in ln]


_ACCEL: str | None = None


def accel(qemu: Qemu) -> str:
    """KVM only if it really boots this kernel here; TCG otherwise."""
    global _ACCEL
    if os.environ.get("ACCEL"):
        return os.environ["ACCEL"]
    # The probe result is cached per host kernel (a fresh CI machine has a fresh .cache).
    probe_cache = CACHE / f"accel-probe-{os.uname().release}"
    if _ACCEL is None and probe_cache.exists():
        _ACCEL = probe_cache.read_text().strip()
        log(f"accelerator: {_ACCEL} (cached probe {probe_cache.name}; set ACCEL=tcg|kvm to force)")
    if _ACCEL is None:
        _ACCEL = "tcg"
        if os.access("/dev/kvm", os.R_OK | os.W_OK):
            with tempfile.TemporaryDirectory(prefix="vhostfsd-gt-probe-") as d:
                console = Path(d) / "console.log"
                cmd = [str(qemu.binary), *qemu.args, "-accel", "kvm", "-cpu", "host", "-m", "256M",
                       "-machine", "q35", "-nodefaults", "-display", "none", "-no-reboot",
                       "-serial", f"file:{console}", "-kernel", str(KERNEL), "-initrd", str(INITRD),
                       "-append", "console=ttyS0 quiet panic=-1 vt.workload=probe"]
                # A working KVM reaches /init in a second or two; a broken one stops with an
                # emulation error (the host here is itself a PVM guest) and QEMU hangs paused.
                p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
                if console.exists() and "VHOSTFSD-GUEST-RESULT: PASS probe" in console.read_text(errors="replace"):
                    _ACCEL = "kvm"
        probe_cache.write_text(_ACCEL + "\n")
        log(f"accelerator: {_ACCEL} (set ACCEL=tcg|kvm to force)")
    return _ACCEL


def run_qemu(qemu: Qemu, sock: Path, tag: str, queues: int, workload: str, args: dict[str, str],
             console: Path, timeout: float, mountopts: str = "", interactive: bool = False,
             smp: int = 2, dax: bool = False) -> tuple[int | None, float]:
    """Boots the guest; returns (QEMU exit status or None on timeout, seconds). With `dax`, the
    device is QEMU 11.1's generic vhost-user device, which takes its shared-memory window (and
    the tag, from the config space) from the daemon: vhost-user-fs-pci has no window."""
    dev = f"vhost-user-fs-pci,chardev=c0,tag={tag}"
    if queues > 1:
        dev += f",num-request-queues={queues}"
    if dax:
        dev = f"vhost-user-test-device-pci,chardev=c0,virtio-id=26,num_vqs={1 + queues},config_size=40"
    vtargs = ",".join(f"{k}={v}" for k, v in args.items())
    append = f"console=ttyS0 panic=-1 vt.workload={workload} vt.tag={tag}"
    append += " quiet" if not interactive else " loglevel=4"
    if vtargs:
        append += f" vt.args={vtargs}"
    if mountopts:
        append += f" vt.mountopts={mountopts}"
    acc = accel(qemu)
    cmd = [str(qemu.binary), *qemu.args, "-accel", acc, "-cpu", "max" if acc == "tcg" else "host",
           "-smp", str(smp), "-m", MEM,
           "-object", f"memory-backend-memfd,id=mem,size={MEM},share=on",
           "-machine", "q35,memory-backend=mem", "-nodefaults", "-no-reboot",
           "-chardev", f"socket,id=c0,path={sock}", "-device", dev,
           "-kernel", str(KERNEL), "-initrd", str(INITRD), "-append", append]
    t0 = time.monotonic()
    if interactive:
        cmd += ["-nographic", "-serial", "mon:stdio"]
        p = subprocess.Popen(cmd, env={**os.environ, **qemu.env})
    else:
        cmd += ["-display", "none", "-serial", f"file:{console}"]
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=open(console.with_suffix(".qemu.log"), "wb"),
                             stderr=subprocess.STDOUT, env={**os.environ, **qemu.env})
    try:
        rc = p.wait(timeout=None if interactive else timeout)
    except subprocess.TimeoutExpired:
        rc = None
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return rc, time.monotonic() - t0


def dax_qemu(qemus: dict[str, Qemu], what: str) -> Qemu | None:
    """QEMU 11.1, the one with vhost-user shared-memory regions (DAX); None, said, without it."""
    q = qemus.get("11.1")
    if q is None:
        log(f"{what} needs QEMU >= 11.1: run guest-tests/build-qemu11.sh (build-assets.sh does)")
    return q
