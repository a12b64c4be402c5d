"""The shared directory on the host: prepared files, the data pattern, snapshots, and the
host actor that changes the share while the guest watches."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import tempfile
from pathlib import Path

from harness.env import CHECKER

def pattern(size: int, seed: int) -> bytes:
    """The byte stream of `checker pattern write PATH SIZE SEED` (splitmix64(seed + i), little
    endian, per 8-byte word), made by the checker itself: a static binary that runs on the host
    too, so the guest and the host share one generator."""
    with tempfile.TemporaryDirectory(prefix="vhostfsd-pattern-") as d:
        path = Path(d) / "pattern"
        subprocess.run([str(CHECKER), "pattern", "write", str(path), str(size), str(seed)],
                       check=True, stdout=subprocess.DEVNULL)
        return path.read_bytes()


# DAX files (guest-tests/checker/src/dax.rs): (name, size, seed) the guest writes through a
# mapping, and the one the host writes for the guest to read through a mapping.
DAX_GUEST_MMAP = ("dax-mmap-guest.bin", 3 << 20, 21)
DAX_HOST_MMAP = ("dax-host.bin", 5 << 20, 22)


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
