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
import dataclasses
import hashlib
import os
import re
import shutil
import signal
import socket
import stat
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = HERE / ".cache"
KERNEL = CACHE / "vmlinuz"
INITRD = CACHE / "initramfs.cpio.gz"
RESULT_RE = re.compile(r"VHOSTFSD-GUEST-RESULT: (PASS|FAIL) (\S+) (.*)")
MEM = "512M"

# Seconds a workload may take under TCG before the VM is killed.
WORKLOAD_TIMEOUT = {"dax": 400, "smoke": 120, "semantics": 300, "fio": 900, "readonly": 180, "demo": 120, "daxdemo": 240,
                    "probe": 60}


def log(msg: str) -> None:
    print(f"runner: {msg}", flush=True)


# --------------------------------------------------------------------------------------------
# QEMU


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


# --------------------------------------------------------------------------------------------
# Daemon


@dataclasses.dataclass
class DaemonInfo:
    binary: Path
    help: str

    def supports(self, flag: str) -> bool:
        """Whether --help lists the flag (the part before any `=VALUE`)."""
        flag = flag.split("=")[0]
        return re.search(rf"(^|\s){re.escape(flag)}\b", self.help) is not None

    @property
    def name(self) -> str:
        return self.binary.name


def default_daemon() -> Path:
    if os.environ.get("VHOSTFSD"):
        return Path(os.environ["VHOSTFSD"])
    for p in (REPO / "target/release/vhostfsd", REPO / "target/debug/vhostfsd"):
        if p.exists():
            return p
    return REPO / "target/release/vhostfsd"


def daemon_info(binary: Path) -> DaemonInfo:
    if not binary.exists():
        sys.exit(f"runner: daemon {binary} not found (build it, or set VHOSTFSD)")
    r = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=10)
    return DaemonInfo(binary, r.stdout + r.stderr)


class Daemon:
    """The daemon under test, started on its own and always stopped by its pid."""

    def __init__(self, info: DaemonInfo, sock: Path, share: Path, tag: str, cache: str, sandbox: str,
                 xattr: bool, readonly: bool, queues: int, logfile: Path):
        self.sock = sock
        self.logfile = logfile
        cmd = [str(info.binary), "--socket-path", str(sock), "--shared-dir", str(share), "--tag", tag,
               "--cache", cache, "--sandbox", sandbox]
        if xattr:
            cmd.append("--xattr")
        if readonly:
            cmd.append("--readonly")
        self.allow_mmap = cache == "never" and info.supports("--allow-mmap")
        if self.allow_mmap:
            cmd.append("--allow-mmap")  # shared mmap with direct I/O, checked by the semantics workload
        if queues > 1 or info.supports("--num-request-queues"):
            cmd += ["--num-request-queues", str(queues)]
        self.cmd = cmd
        self.proc: subprocess.Popen | None = None
        self.env: dict[str, str] = {}
        self.returncode: int | None = None

    @classmethod
    def from_command(cls, cmd: list[str], sock: Path, logfile: Path, env: dict[str, str] | None = None) -> "Daemon":
        """A daemon started by a given command line (packaged.py: the systemd unit's), serving `sock`."""
        d = cls.__new__(cls)
        d.cmd, d.sock, d.logfile, d.allow_mmap, d.proc = cmd, sock, logfile, False, None
        d.env, d.returncode = dict(env or {}), None
        return d

    def start(self, timeout: float = 15) -> None:
        self.logfh = open(self.logfile, "wb")
        self.logfh.write(("$ " + " ".join(self.cmd) + "\n").encode())
        self.logfh.flush()
        env = {**os.environ, **self.env}
        env.setdefault("RUST_LOG", "info")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=self.logfh,
                                     stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with status {self.proc.returncode} before creating its socket")
            if self.sock.exists() and stat.S_ISSOCK(self.sock.stat().st_mode):
                # Listening yet? A connect would take the one frontend slot, so just wait a bit.
                time.sleep(0.1)
                return
            time.sleep(0.05)
        raise RuntimeError(f"daemon did not create {self.sock} within {timeout}s")

    def stop(self, timeout: float = 10) -> int | None:
        """Returns the exit status if the daemon had exited by itself (frontend gone)."""
        if self.proc is None:
            return None
        rc = None
        try:
            rc = self.proc.wait(timeout=1.5)  # virtiofsd exits when the VMM disconnects
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logfh.close()
        self.returncode = self.proc.returncode
        self.proc = None
        return rc


class HostActor:
    """Answers the guest's sync/request-N files during a boot (semantics workload): changes the
    shared directory on the host while the guest watches."""

    def __init__(self, share: Path, active: bool = True):
        import threading
        self.share = share
        self.active = active
        self.lockfds: list[int] = []
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.errors: list[str] = []

    def __enter__(self):
        # Locks held on the host for the whole boot (checker locks).
        import fcntl
        if not self.active:  # other workloads (readonly!) must find the share as prepared
            return self
        ld = self.share / "locks"
        ld.mkdir(exist_ok=True)
        for name, how in (("posix", "lockf"), ("flock", "flock")):
            fd = os.open(ld / name, os.O_RDWR | os.O_CREAT, 0o644)
            if how == "lockf":
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.lockfds.append(fd)
        self.thread.start()
        return self

    def __exit__(self, *a):
        self.stop_ev.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)
        for fd in self.lockfds:
            os.close(fd)

    def run(self) -> None:
        sync = self.share / "sync"
        while not self.stop_ev.wait(0.1):
            req = sync / "request-1"
            if req.exists() and not (sync / "done-1").exists():
                try:
                    (sync / "coherent.txt").write_text("changed on the host, longer than before\n")
                    (sync / "host-created").write_text("x\n")
                    req.unlink()
                    (sync / "done-1").touch()
                except OSError as e:
                    self.errors.append(f"host actor: {e}")


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


# --------------------------------------------------------------------------------------------
# Host-side data: prepared files, pattern, snapshots


def splitmix64(z: int) -> int:
    M = (1 << 64) - 1
    z = (z + 0x9E3779B97F4A7C15) & M
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return z ^ (z >> 31)


def pattern(size: int, seed: int) -> bytes:
    """The byte stream of `checker pattern write PATH SIZE SEED`."""
    n = (size + 7) // 8
    return b"".join(splitmix64((seed + i) & ((1 << 64) - 1)).to_bytes(8, "little") for i in range(n))[:size]


# DAX files (guest-tests/checker/src/dax.rs): (name, size, seed) the guest writes through a
# mapping, and the one the host writes for the guest to read through a mapping.
DAX_GUEST_MMAP = ("dax-mmap-guest.bin", 3 << 20, 21)
DAX_HOST_MMAP = ("dax-host.bin", 5 << 20, 22)
# READ + WRITE requests the daemon may see in a whole DAX case (the fio jobs alone would send
# thousands without DAX).
DAX_MAX_READ_WRITE = 100


def prepare_share(share: Path, readonly: bool) -> None:
    name, size, seed = DAX_HOST_MMAP
    (share / name).write_bytes(pattern(size, seed))
    hp = share / "host-prepared"
    (hp / "nested/deeper").mkdir(parents=True)
    files = {
        "random-1m.bin": os.urandom(1 << 20),
        "odd-size.bin": os.urandom(123_457),
        "small.txt": b"prepared on the host\n",
        "empty": b"",
        "nested/deeper/file.txt": b"deep\n" * 1000,
        "name with spaces": b"spaces\n",
    }
    for name, data in files.items():
        (hp / name).write_bytes(data)
    manifest = "".join(f"{hashlib.sha256(d).hexdigest()}  {n}\n" for n, d in files.items())
    (hp / "MANIFEST.sha256").write_text(manifest)
    if readonly:
        (share / "ro-file").write_bytes(b"read-only export\n" * 100)
        (share / "ro-dir/empty").mkdir(parents=True)
        (share / "ro-dir/f").write_text("f\n")
        try:
            os.setxattr(share / "ro-file", "user.host", b"kept")
        except OSError:
            pass


def snapshot(root: Path) -> dict[str, tuple]:
    """Everything about a tree a read-only export must not change (atime aside)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames, "."] if dirpath == str(root) else [*dirnames, *filenames]:
            p = Path(dirpath) / name if name != "." else root
            st = p.lstat()
            rel = str(p.relative_to(root))
            digest = ""
            if stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                digest = os.readlink(p)
            try:
                xattrs = tuple(sorted((x, os.getxattr(p, x, follow_symlinks=False))
                                      for x in os.listxattr(p, follow_symlinks=False)))
            except OSError:
                xattrs = ()
            mtime = st.st_mtime_ns if not stat.S_ISDIR(st.st_mode) or rel != "." else None
            out[rel] = (st.st_mode, st.st_uid, st.st_gid, st.st_size if not stat.S_ISDIR(st.st_mode) else 0,
                        mtime, st.st_ctime_ns if rel != "." else None, digest, xattrs)
    return out


def host_checks(case: "Case", share: Path, console_text: str, before: dict | None) -> list[str]:
    """Host-side verification after the VM is gone; returns the problems found."""
    errs: list[str] = []

    def expect(cond: bool, msg: str) -> None:
        if not cond:
            errs.append(msg)

    if case.workload == "readonly":
        after = snapshot(share)
        if before != after:
            for k in sorted(set(before) | set(after)):
                if before.get(k) != after.get(k):
                    errs.append(f"read-only export changed on the host: {k}: {before.get(k)} -> {after.get(k)}")
        return errs

    if case.workload == "dax":
        name, size, seed = DAX_GUEST_MMAP
        p = share / name
        expect(p.exists() and p.read_bytes() == pattern(size, seed), f"{name}: mmap writes did not reach the host")
        return errs

    gw = share / "guest-written"
    if not gw.is_dir():
        return ["guest-written/ missing on the host"]
    for name, size, seed in (("pattern-a.bin", 3000001, 11), ("pattern-b.bin", 65536, 12)):
        p = gw / name
        expect(p.exists() and p.read_bytes() == pattern(size, seed), f"{p.name}: content differs from the pattern on the host")
    expect((gw / "empty").exists() and (gw / "empty").stat().st_size == 0, "guest-written/empty")
    sums = dict((m.group(2), m.group(1)) for m in re.finditer(r"GUEST-SHA256 ([0-9a-f]{64}) (\S+)", console_text))
    expect(len(sums) == 2, f"guest checksums missing from the console ({len(sums)} found)")
    for name, digest in sums.items():
        p = gw / name
        expect(p.exists() and hashlib.sha256(p.read_bytes()).hexdigest() == digest,
               f"{name}: host sha256 differs from the guest's")

    if case.workload == "semantics":
        hc = share / "host-check"
        try:
            st = (hc / "owned").stat()
            expect((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o640),
                   f"host-check/owned: uid {st.st_uid} gid {st.st_gid} mode {stat.S_IMODE(st.st_mode):o}")
            expect(st.st_mtime_ns == 1234567890_987654321, f"host-check/owned: mtime_ns {st.st_mtime_ns}")
            expect(st.st_atime_ns == 1000000000_123456789, f"host-check/owned: atime_ns {st.st_atime_ns}")
            expect((hc / "pattern.bin").read_bytes() == pattern((1 << 20) + 123, 42), "host-check/pattern.bin differs")
            expect((hc / "renamed").read_bytes() == b"renamed\n", "host-check/renamed content")
            expect(not (hc / "gone").exists() and not (hc / "renamed.tmp").exists(), "host-check: rename source left behind")
            expect(os.readlink(hc / "symlink") == "target-of-symlink", "host-check/symlink target")
            a, b = (hc / "hardlink-a").stat(), (hc / "hardlink-b").stat()
            expect(a.st_ino == b.st_ino and a.st_nlink == 2, "host-check/hardlink-a,b not one inode with 2 links")
            expect((hc / "truncated").read_bytes() == pattern(5000, 7)[:3000], "host-check/truncated content")
            if case.xattr:
                expect(os.getxattr(hc / "xattr", "user.vhostfsd") == b"from-guest", "host-check/xattr user.vhostfsd")
        except OSError as e:
            errs.append(f"host-check: {e}")
    return errs


# --------------------------------------------------------------------------------------------
# Cases


@dataclasses.dataclass
class Case:
    workload: str
    qemu: str
    cache: str = "auto"
    queues: int = 1
    sandbox: str = "none"
    xattr: bool = False
    size: str = "16M"
    extra: dict = dataclasses.field(default_factory=dict)
    flags: tuple[str, ...] = ()  # more daemon flags; the case is skipped if the daemon lacks one
    boots: int = 1  # >1: boot again against the same daemon (reconnect after the VMM went away)
    mountopts: tuple[str, ...] = ()  # mount options of each boot (the last one repeats)
    dax: bool = False  # QEMU's generic vhost-user device with the daemon's DAX window

    @property
    def readonly(self) -> bool:
        return self.workload == "readonly"

    @property
    def name(self) -> str:
        n = f"{self.workload}-q{self.qemu}-{self.cache}-{self.queues}rq-{self.sandbox}"
        n += "-xattr" if self.xattr else ""
        if self.dax:  # the socket path must stay short (108 bytes): the flags are the case's
            return n + "-" + "-".join(o.replace("dax=", "") for o in self.mountopts)
        n += "".join("-" + f.lstrip("-").replace("=", "-") for f in self.flags)
        return n + (f"-{self.boots}boots" if self.boots > 1 else "")


def matrix(kind: str, qemus: list[str], sandboxes: list[str]) -> list[Case]:
    """ci: every axis value at least once (cache, queues, sandbox, QEMU, xattr, workload)."""
    # QEMU 11.1 serves the DAX case; the ordinary axes run on the others.
    dax = "11.1" in qemus
    qemus = [q for q in qemus if q != "11.1"] or qemus
    if kind == "full":
        return [Case(w, q, c, n, s, x)
                for w in ("semantics", "fio", "readonly") for q in qemus for c in ("auto", "never")
                for n in (1, 2) for s in sandboxes for x in (False, True)]
    new, old = qemus[0], qemus[-1]
    if kind == "quick":
        return [Case("semantics", new, "auto", 1, sandboxes[0], True),
                Case("fio", new, "auto", 1, sandboxes[0], extra={"runtime": "3"}),
                Case("readonly", new, "never", 1, sandboxes[0], True)]
    sb = lambda i: sandboxes[i % len(sandboxes)]  # noqa: E731 - every sandbox mode gets cases
    cases = [
        Case("semantics", new, "auto", 1, sb(0), True),
        Case("semantics", new, "never", 2, sb(1), False),
        Case("semantics", old, "auto", 2, sb(2), True),
        Case("semantics", old, "never", 1, sb(3), True),
        Case("fio", new, "auto", 1, sb(0)),
        Case("fio", new, "never", 2, sb(1)),
        Case("fio", old, "auto", 2, sb(2), size="8M", extra={"runtime": "3"}),
        Case("readonly", new, "auto", 1, sb(0), True),
        Case("readonly", old, "never", 2, sb(1), False),
        Case("fio", new, "auto", 2, sb(2), size="8M", extra={"runtime": "3"}, flags=("--writeback",)),
        Case("smoke", old, "auto", 1, sb(1), boots=2),
        Case("semantics", new, "auto", 2, sb(0), True, flags=("--inode-file-handles=prefer",)),
        Case("semantics", old, "never", 2, sb(2), False, flags=("--thread-pool-size=4",)),
    ]
    if dax:
        # DAX: dax=always (fio, mmap both ways, truncate, a file bigger than the window), then
        # a second boot against the same daemon with dax=inode and --dax-policy large-files.
        cases.append(Case("dax", "11.1", "auto", 1, sb(0), boots=2, dax=True,
                          mountopts=("dax=always", "dax=inode"),
                          flags=("--dax-window=64M", "--dax-policy=large-files")))
    # A sandbox mode beyond the first two still gets a semantics run.
    for i in range(4, len(sandboxes)):
        cases.append(Case("semantics", new, "auto", 1, sandboxes[i], True))
    return cases


@dataclasses.dataclass
class Outcome:
    case: Case
    status: str  # PASS, FAIL, SKIP
    seconds: float
    detail: str = ""
    console: str = ""


def run_case(case: Case, info: DaemonInfo, qemus: dict[str, Qemu], workroot: Path, verbose: bool) -> Outcome:
    t0 = time.monotonic()
    if case.qemu not in qemus:
        return Outcome(case, "SKIP", 0, f"QEMU {case.qemu} not available")
    note = ""
    if case.queues > 1 and not info.supports("--num-request-queues"):
        # virtiofsd offers one request queue: still run the case, with one.
        case = dataclasses.replace(case, queues=1)
        note = f"ran with 1 request queue: {info.name} has no --num-request-queues"
    if case.readonly and not info.supports("--readonly"):
        return Outcome(case, "SKIP", 0, f"{info.name} has no --readonly")
    for f in case.flags:
        if not info.supports(f):
            return Outcome(case, "SKIP", 0, f"{info.name} has no {f}")
    wd = workroot / case.name
    share = wd / "share"
    share.mkdir(parents=True)
    sock = wd / "vhostfsd.sock"
    console = wd / "console.log"
    dlog = wd / "daemon.log"
    prepare_share(share, case.readonly)
    before = snapshot(share) if case.readonly else None
    args = {"xattr": "1" if case.xattr else "0", "cache": case.cache, "size": case.size, **case.extra}
    d = Daemon(info, sock, share, "myfs", case.cache, case.sandbox, case.xattr, case.readonly, case.queues, dlog)
    d.cmd += list(case.flags)
    problems: list[str] = []
    qrc = None
    try:
        try:
            d.start()
        except RuntimeError as e:
            text = dlog.read_text(errors="replace") if dlog.exists() else ""
            if "sandbox" in text.lower() and case.sandbox != "none":
                return Outcome(case, "SKIP", time.monotonic() - t0,
                               f"daemon refused --sandbox {case.sandbox}: {text.strip().splitlines()[-1]}")
            problems.append(str(e))
        else:
            if d.allow_mmap:
                args["allow_mmap"] = "1"
            # vhostfsd serves POSIX and flock locks on the host when it runs requests on a
            # thread pool (blocking lock waits must not stall a queue); the checker then requires
            # the host's locks to conflict in the guest. virtiofsd locks in the guest only.
            if info.name.startswith("vhostfsd") and any(f.startswith("--thread-pool-size") for f in case.flags):
                args["locks"] = "1"
            for boot in range(1, case.boots + 1):
                if boot > 1:
                    if d.proc.poll() is not None:
                        return Outcome(case, "SKIP", time.monotonic() - t0,
                                       f"{info.name} exits when the frontend disconnects (status {d.proc.returncode})")
                    # Each boot has to pass on its own; keep the earlier console next to this one.
                    console.rename(wd / f"console-boot{boot - 1}.log")
                    for sub in ("guest-written", "host-check"):
                        shutil.rmtree(share / sub, ignore_errors=True)
                opts = case.mountopts[min(boot, len(case.mountopts)) - 1] if case.mountopts else ""
                with HostActor(share, active=case.workload == "semantics") as actor:
                    qrc, secs = run_qemu(qemus[case.qemu], sock, "myfs", case.queues, case.workload, args, console,
                                         WORKLOAD_TIMEOUT.get(case.workload, 300), mountopts=opts,
                                         dax=case.dax)
                problems += actor.errors
                qlog = console.with_suffix(".qemu.log")
                for err in qemu_errors(qlog.read_text(errors="replace") if qlog.exists() else ""):
                    problems.append(f"boot {boot}: QEMU printed an error: {err}")
                if qrc is None:
                    problems.append(f"boot {boot}: QEMU timed out after {WORKLOAD_TIMEOUT.get(case.workload, 300)}s (killed)")
                elif qrc != 0:
                    problems.append(f"boot {boot}: QEMU exited with status {qrc}")
                if boot < case.boots:
                    t = console.read_text(errors="replace") if console.exists() else ""
                    if "VHOSTFSD-GUEST-RESULT: PASS" not in t:
                        problems.append(f"boot {boot}: no PASS line")
                        break
                    time.sleep(0.5)
    finally:
        drc = d.stop()
    if drc is not None and drc < 0 and -drc not in (signal.SIGTERM, signal.SIGKILL):
        problems.append(f"daemon died of signal {-drc}")
    text = console.read_text(errors="replace") if console.exists() else ""
    dtext = dlog.read_text(errors="replace") if dlog.exists() else ""
    if "panicked at" in dtext:
        problems.append("the daemon panicked (see its log)")
    if case.dax:
        problems += dax_counter_check(dtext)
    m = RESULT_RE.search(text)
    if not m:
        problems.append("no VHOSTFSD-GUEST-RESULT line on the console")
    elif m.group(1) != "PASS":
        problems.append(f"guest: {m.group(3)}")
    if m and m.group(1) == "PASS":
        problems += host_checks(case, share, text, before)
    status = "FAIL" if problems else "PASS"
    notes = [note] if note else []
    skipped = [m.split(": ")[0] for m in re.findall(r"checker: skip (.*)", text)]
    if skipped:
        notes.append(f"guest skipped {len(skipped)} check(s): " + "; ".join(skipped))
    if status == "FAIL" or verbose:
        print(f"----- {case.name}: console tail ({console}) -----")
        print("\n".join(text.splitlines()[-60:]))
        qlog = console.with_suffix(".qemu.log")
        if qlog.exists() and qlog.stat().st_size:
            print(f"----- {case.name}: QEMU output -----")
            print(qlog.read_text(errors="replace")[-3000:])
        print(f"----- {case.name}: daemon log tail ({dlog}) -----")
        print("\n".join(dlog.read_text(errors="replace").splitlines()[-40:]) if dlog.exists() else "(none)")
        print("-----")
    if status == "PASS" and not os.environ.get("KEEP"):
        shutil.rmtree(wd, ignore_errors=True)
    return Outcome(case, status, time.monotonic() - t0, "; ".join(problems + notes), text)


def request_counts(daemon_log: str) -> dict[str, int]:
    """The last "requests served: OP=N ..." line the daemon logged (at exit, or on SIGUSR1)."""
    lines = re.findall(r"requests served: (.*)", daemon_log)
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", lines[-1])} if lines else {}


def dax_counter_check(daemon_log: str) -> list[str]:
    counts = request_counts(daemon_log)
    if not counts:
        return ["the daemon logged no request counters at exit"]
    rw = counts.get("READ", 0) + counts.get("WRITE", 0)
    log(f"daemon requests: {' '.join(f'{k}={v}' for k, v in counts.items())}")
    problems = []
    if counts.get("SETUPMAPPING", 0) == 0:
        problems.append("no SETUPMAPPING reached the daemon: the guest did not use DAX")
    if rw > DAX_MAX_READ_WRITE:
        problems.append(f"{rw} READ/WRITE requests reached the daemon during DAX I/O (at most {DAX_MAX_READ_WRITE})")
    return problems


def fio_figures(text: str) -> dict[str, dict[str, float]]:
    out = {}
    for m in re.finditer(r"FIO-RESULT (\S+) read_kibs=(\d+) read_iops=([\d.]+) write_kibs=(\d+) write_iops=([\d.]+)", text):
        out[m.group(1)] = {"read_kibs": float(m.group(2)), "read_iops": float(m.group(3)),
                           "write_kibs": float(m.group(4)), "write_iops": float(m.group(5))}
    return out


def print_perf(outcomes: list[Outcome]) -> None:
    for o in outcomes:
        figs = fio_figures(o.console)
        perf = {k: v for k, v in figs.items() if not "verify" in k and k != "perf-prepare"}
        if perf:
            print(f"fio throughput, {o.case.name}:")
            for k, v in perf.items():
                rw = "read" if v["read_kibs"] else "write"
                print(f"  {k:28} {v[rw + '_kibs'] / 1024:9.1f} MiB/s {v[rw + '_iops']:10.0f} IOPS")


# --------------------------------------------------------------------------------------------
# Compare (benchmark, not a test)


def compare(args, qemus: dict[str, Qemu], workroot: Path) -> int:
    daemons = [daemon_info(Path(args.daemon)), daemon_info(Path(args.other_daemon))]
    qemu = qemus[args.qemu]
    results: dict[str, dict[str, list[float]]] = {d.name: {} for d in daemons}
    names = [d.name for d in daemons]
    if names[0] == names[1]:
        names = [f"{n}#{i}" for i, n in enumerate(names)]
        results = {n: {} for n in names}
    fioargs = {"verify": "0", "perf": "1", "runtime": str(args.runtime), "size": args.size, "engines": "psync"}
    for rnd in range(args.rounds):
        order = list(range(2)) if rnd % 2 == 0 else [1, 0]  # alternate who goes first
        for i in order:
            info, name = daemons[i], names[i]
            wd = workroot / f"compare-{rnd}-{i}"
            share = wd / "share"
            share.mkdir(parents=True)
            prepare_share(share, False)
            d = Daemon(info, wd / "s.sock", share, "myfs", args.cache, "none", False, False, 1, wd / "daemon.log")
            try:
                d.start()
                rc, secs = run_qemu(qemu, wd / "s.sock", "myfs", 1, "fio", fioargs, wd / "console.log", 900)
            finally:
                d.stop()
            text = (wd / "console.log").read_text(errors="replace")
            figs = fio_figures(text)
            if not RESULT_RE.search(text) or "PASS" not in RESULT_RE.search(text).group(1) or not figs:
                print("\n".join(text.splitlines()[-40:]))
                log(f"round {rnd + 1}: {name} failed (logs in {wd})")
                return 1
            for job, v in figs.items():
                if job == "perf-prepare":
                    continue
                rw = "read" if v["read_kibs"] else "write"
                results[name].setdefault(job, []).append(v[rw + "_kibs"] / 1024)
            print(f"round {rnd + 1}/{args.rounds} {name:10} " +
                  " ".join(f"{j}={results[name][j][-1]:.1f}" for j in results[name]) + f" MiB/s ({secs:.0f}s)", flush=True)
    a, b = names
    print(f"\nmedians over {args.rounds} rounds, MiB/s (QEMU {args.qemu}, cache={args.cache}, {accel(qemu)}, size {args.size}, {args.runtime}s/job)")
    print(f"{'job':28} {a:>12} {b:>12} {'ratio ' + a + '/' + b:>24}")
    for job in results[a]:
        ma, mb = statistics.median(results[a][job]), statistics.median(results[b].get(job, [0]))
        ratio = ma / mb if mb else float("nan")
        print(f"{job:28} {ma:12.1f} {mb:12.1f} {ratio:24.2f}")
        print(f"{'':28} {'  '.join(f'{x:.0f}' for x in results[a][job]):>12} {'  '.join(f'{x:.0f}' for x in results[b].get(job, [])):>12}")
    return 0


# --------------------------------------------------------------------------------------------


def dax_bench(args, qemus: dict[str, Qemu], workroot: Path) -> int:
    """The same fio jobs with -o dax=always and without, alternating, on one daemon with a DAX
    window (QEMU 11.1); prints medians and the DAX/no-DAX ratio per job."""
    if "11.1" not in qemus:
        log("--dax-bench needs QEMU 11.1 (build-qemu11.sh)")
        return 1
    info = daemon_info(Path(os.environ.get("VHOSTFSD") or default_daemon()))
    wd = workroot / "dax-bench"
    share = wd / "share"
    share.mkdir(parents=True)
    d = Daemon(info, wd / "s.sock", share, "myfs", "auto", "none", False, False, 1, wd / "daemon.log")
    d.cmd += ["--dax-window=1G"]
    d.start()
    figures: dict[str, dict[str, list[float]]] = {"dax": {}, "nodax": {}}
    try:
        for r in range(args.rounds):
            for mode in ("dax", "nodax"):
                console = wd / f"console-{mode}-{r}.log"
                rc, secs = run_qemu(qemus["11.1"], wd / "s.sock", "myfs", 1, "daxbench",
                                    {"size": "64M", "runtime": "5"}, console, 600,
                                    mountopts="dax=always" if mode == "dax" else "", dax=True)
                text = console.read_text(errors="replace")
                if "VHOSTFSD-GUEST-RESULT: PASS" not in text:
                    log(f"round {r} {mode}: no PASS (QEMU status {rc}); see {console}")
                    return 1
                for job, f in fio_figures(text).items():
                    kibs = f["read_kibs"] or f["write_kibs"]
                    figures[mode].setdefault(job, []).append(kibs / 1024)
                log(f"round {r + 1}/{args.rounds} {mode}: {secs:.0f}s")
    finally:
        d.stop()
    print(f"{'job':24} {'DAX MiB/s':>10} {'no DAX MiB/s':>13} {'ratio':>7}  {'per-round ratios':>16}"
          f"   (medians of {args.rounds} alternating rounds)")
    for job in figures["dax"]:
        a, b = statistics.median(figures["dax"][job]), statistics.median(figures["nodax"].get(job, [0]))
        # Round r's DAX boot and its no-DAX boot ran back to back: their ratio shows the spread.
        per_round = [x / y for x, y in zip(figures["dax"][job], figures["nodax"].get(job, [])) if y]
        spread = f"{min(per_round):.1f}-{max(per_round):.1f}x" if per_round else "-"
        print(f"{job:24} {a:10.1f} {b:13.1f} {a / b if b else float('inf'):6.1f}x  {spread:>16}")
    return 0


def dax_hazard(args, qemus: dict[str, Qemu], workroot: Path) -> int:
    """Reproduces the host-truncation hazard (docs/dax.md): the guest maps a file with DAX,
    the host truncates it, the guest reads the mapping again. Prints what QEMU did."""
    import threading
    if "11.1" not in qemus:
        log("--dax-hazard needs QEMU 11.1 (build-qemu11.sh)")
        return 1
    info = daemon_info(Path(os.environ.get("VHOSTFSD") or default_daemon()))
    wd = workroot / "dax-hazard"
    share = wd / "share"
    share.mkdir(parents=True)
    name, size, seed = DAX_HOST_MMAP
    (share / name).write_bytes(pattern(size, seed))
    d = Daemon(info, wd / "s.sock", share, "myfs", "auto", "none", False, False, 1, wd / "daemon.log")
    d.cmd += ["--dax-window=64M"]
    d.start()
    console = wd / "console.log"
    result: list = []
    t = threading.Thread(target=lambda: result.append(run_qemu(
        qemus["11.1"], wd / "s.sock", "myfs", 1, "daxhazard", {}, console, 300,
        mountopts="dax=always", dax=True)))
    t.start()
    deadline = time.monotonic() + 240
    while not (share / "READY").exists() and t.is_alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    log("guest has the file mapped; truncating it on the host")
    os.truncate(share / name, 0)
    (share / "GO").touch()
    t.join()
    d.stop()
    rc = result[0][0] if result else None
    print(f"QEMU exit status: {rc}")
    print("guest console tail:\n" + "\n".join(console.read_text(errors="replace").splitlines()[-8:]))
    qlog = console.with_suffix(".qemu.log")
    print("QEMU output:\n" + (qlog.read_text(errors="replace") if qlog.exists() else ""))
    return 0


def dax_demo(share: Path, qemus: dict[str, Qemu], workroot: Path) -> int:
    """demo.sh --dax: one daemon with a DAX window; the guest does the same file I/O with
    -o dax=always and then (second boot) without; the daemon logs its request counters
    (SIGUSR1) when the I/O starts and ends, and the requests between are printed side by side."""
    import threading
    if "11.1" not in qemus:
        log("the DAX demo needs QEMU >= 11.1: run guest-tests/build-qemu11.sh (build-assets.sh does)")
        return 1
    info = daemon_info(Path(os.environ.get("VHOSTFSD") or default_daemon()))
    share.mkdir(parents=True, exist_ok=True)
    name, size, seed = DAX_HOST_MMAP
    (share / name).write_bytes(pattern(size, seed))
    wd = workroot / "dax-demo"
    wd.mkdir()
    dlog = wd / "daemon.log"
    d = Daemon(info, wd / "s.sock", share, "myfs", "auto", os.environ.get("SANDBOX", "none"),
               False, False, 1, dlog)
    d.cmd += ["--dax-window=64M"]
    log(f"$ {' '.join(d.cmd)}")
    d.start()
    deltas: dict[str, dict[str, int]] = {}
    problems: list[str] = []
    try:
        for mode, opts in (("DAX", "dax=always"), ("no DAX", "")):
            sync = share / ".demo"
            shutil.rmtree(sync, ignore_errors=True)
            console = wd / f"console-{mode.replace(' ', '')}.log"
            log(f"booting QEMU {qemus['11.1'].version} ({accel(qemus['11.1'])}): "
                f"mount -t virtiofs myfs /mnt{' -o ' + opts if opts else ''}")
            result: list = []
            t = threading.Thread(target=lambda: result.append(run_qemu(
                qemus["11.1"], wd / "s.sock", "myfs", 1, "daxdemo", {}, console,
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


GUEST_CRASH_RE = re.compile(r"Kernel panic - not syncing: (.*)")


def guest_crashed_before_serving(o: Outcome, wd: Path) -> str | None:
    """The guest kernel's panic message when a failed case never reached the daemon.

    QEMU's TCG occasionally crashes a booting SMP guest while the kernel patches its own text
    (an int3 in sched_clock_cpu, seen with QEMU 7.2). Such a failure says nothing about the
    daemon when the daemon reports it served no request at all; any other failure stands.
    """
    if o.status != "FAIL":
        return None
    m = GUEST_CRASH_RE.search(o.console)
    dlog = wd / "daemon.log"
    dtext = dlog.read_text(errors="replace") if dlog.exists() else ""
    if m and "requests served: none" in dtext and "VHOSTFSD-GUEST-RESULT" not in o.console:
        return m.group(1).strip()
    return None


def run_matrix(args, qemus, want_qemus, sandboxes, workroot: Path) -> int:
    cases = matrix(args.matrix, want_qemus, sandboxes)
    if args.case:
        cases = [c for c in cases if any(s in c.name for s in args.case)]
    if args.list:
        for c in cases:
            print(c.name)
        return 0
    info = daemon_info(Path(args.daemon))
    log(f"daemon {info.binary}; QEMU " + ", ".join(f"{v} ({q.binary})" for v, q in sorted(qemus.items()))
        + f"; sandboxes {' '.join(sandboxes)}; {len(cases)} cases")
    t0 = time.monotonic()
    outcomes = []
    for i, c in enumerate(cases, 1):
        log(f"[{i}/{len(cases)}] {c.name} ...")
        o = run_case(c, info, qemus, workroot, args.verbose)
        crash = guest_crashed_before_serving(o, workroot / c.name)
        if crash:
            # Not the daemon's doing: it never saw a request. Keep the evidence, boot once more.
            kept = workroot / f"{c.name}-attempt1"
            (workroot / c.name).rename(kept)
            log(f"[{i}/{len(cases)}] {c.name}: the guest kernel crashed before any FUSE request "
                f"({crash}; logs kept in {kept}); running the case once more")
            o = run_case(c, info, qemus, workroot, args.verbose)
            o.detail = "; ".join(filter(None, [o.detail, f"second attempt: the first boot's guest kernel crashed ({crash})"]))
        outcomes.append(o)
        log(f"[{i}/{len(cases)}] {c.name}: {o.status} ({o.seconds:.0f}s){' - ' + o.detail if o.detail else ''}")
    total = time.monotonic() - t0
    print()
    print_perf(outcomes)
    print()
    hdr = f"{'case':44} {'workload':9} {'qemu':5} {'cache':6} {'rq':>2} {'sandbox':9} {'xattr':5} {'result':6} {'time':>6}"
    print(hdr)
    print("-" * len(hdr))
    for o in outcomes:
        c = o.case
        print(f"{c.name:44} {c.workload:9} {c.qemu:5} {c.cache:6} {c.queues:>2} {c.sandbox:9} "
              f"{'yes' if c.xattr else 'no':5} {o.status:6} {o.seconds:5.0f}s")
        if o.detail:
            print(f"    {o.detail}")
    passed = sum(o.status == "PASS" for o in outcomes)
    failed = sum(o.status == "FAIL" for o in outcomes)
    skipped = sum(o.status == "SKIP" for o in outcomes)
    print(f"total {total:.0f}s, daemon {info.binary}" + (f", {skipped} skipped" if skipped else ""))
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def demo(args, qemus, share: Path, interactive: bool) -> int:
    info = daemon_info(Path(args.daemon))
    share.mkdir(parents=True, exist_ok=True)
    qemu = qemus[args.qemu]
    with tempfile.TemporaryDirectory(prefix="vhostfsd-demo-") as wd:
        wd = Path(wd)
        d = Daemon(info, wd / "vhostfsd.sock", share, "myfs", "auto", os.environ.get("SANDBOX", "none"),
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


if __name__ == "__main__":
    sys.exit(main())
