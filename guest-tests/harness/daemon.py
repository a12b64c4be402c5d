"""The daemon under test: which binary, what its --help offers, and its lifecycle."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from harness.env import REPO

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

    def __init__(self, info: DaemonInfo, sock: Path, share: Path, config_tag: str | None, cache: str, sandbox: str,
                 xattr: bool, readonly: bool, queues: int, logfile: Path):
        """`config_tag`: the tag the daemon offers in its config space (`--tag`), for QEMU's
        generic vhost-user device (DAX) only. vhost-user-fs-pci takes the tag from its own
        command line and warns that the backend offers the CONFIG feature when one is given."""
        self.sock = sock
        self.logfile = logfile
        cmd = [str(info.binary), "--socket-path", str(sock), "--shared-dir", str(share),
               "--cache", cache, "--sandbox", sandbox]
        if config_tag is not None:
            cmd += ["--tag", config_tag]
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


def dax_daemon(wd: Path, share: Path, window: str, sandbox: str = "none") -> Daemon:
    """The daemon under test ($VHOSTFSD, else the one built) serving `share` on `wd`/s.sock with a
    DAX window of `window`, for QEMU 11.1's generic vhost-user device (which reads the tag,
    myfs, from the config space); not started yet."""
    info = daemon_info(Path(os.environ.get("VHOSTFSD") or default_daemon()))
    d = Daemon(info, wd / "s.sock", share, "myfs", "auto", sandbox, False, False, 1, wd / "daemon.log")
    d.cmd.append(f"--dax-window={window}")
    return d
