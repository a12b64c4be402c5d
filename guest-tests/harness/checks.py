"""What the host checks after a guest ran a workload: files, request counters, fio figures."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path

from harness.env import log
from harness.share import DAX_GUEST_MMAP, pattern, snapshot

def host_checks(workload: str, xattr: bool, share: Path, console_text: str, before: dict | None) -> list[str]:
    """Host-side verification after the VM ran `workload` (with xattrs on: `xattr`) and is gone;
    returns the problems found. `before`: the read-only export's snapshot."""
    errs: list[str] = []

    def expect(cond: bool, msg: str) -> None:
        if not cond:
            errs.append(msg)

    if workload == "readonly":
        after = snapshot(share)
        if before != after:
            for k in sorted(set(before) | set(after)):
                if before.get(k) != after.get(k):
                    errs.append(f"read-only export changed on the host: {k}: {before.get(k)} -> {after.get(k)}")
        return errs

    if workload == "dax":
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

    if workload == "semantics":
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
            if xattr:
                expect(os.getxattr(hc / "xattr", "user.vhostfsd") == b"from-guest", "host-check/xattr user.vhostfsd")
        except OSError as e:
            errs.append(f"host-check: {e}")
    return errs


# READ + WRITE requests the daemon may see in a whole DAX case (the fio jobs alone would send
# thousands without DAX).
DAX_MAX_READ_WRITE = 100


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
