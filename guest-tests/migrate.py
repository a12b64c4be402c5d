#!/usr/bin/env python3
"""Live migration guest test: boot a guest on QEMU A with daemon A, run the `migrate` workload
(fio with crc32c verification, files held open), migrate over a unix socket to QEMU B (started
with -incoming) whose daemon B serves the same directory, and check the guest goes on there:
fio's verification passes, held files read and write, new lookups work; daemon A must keep
running and serve a next frontend. Exit status 0 on PASS.

Usage: VHOSTFSD=target/debug/vhostfsd guest-tests/migrate.py [-v]
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness.daemon import Daemon, daemon_info, default_daemon  # noqa: E402
from harness.env import INITRD, KERNEL, MEM, RESULT_RE, log  # noqa: E402
from harness.qemu import Qemu, accel, find_qemus, run_qemu  # noqa: E402
from harness.share import prepare_share  # noqa: E402

TIMEOUT = 400


class Qmp:
    def __init__(self, path: Path, timeout: float = 30):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(str(path))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.f = self.s.makefile("rw")
        json.loads(self.f.readline())  # greeting
        self.cmd("qmp_capabilities")

    def cmd(self, name: str, **args) -> dict:
        self.f.write(json.dumps({"execute": name, "arguments": args}) + "\n")
        self.f.flush()
        while True:
            msg = json.loads(self.f.readline())
            if "return" in msg:
                return msg["return"]
            if "error" in msg:
                raise RuntimeError(f"QMP {name}: {msg['error']}")
            # events are skipped


def qemu_cmd(q: Qemu, sock: Path, console: Path, qmp: Path, extra: list[str]) -> list[str]:
    acc = accel(q)
    append = "console=ttyS0 panic=-1 quiet vt.workload=migrate vt.tag=myfs vt.args=size=8M"
    return [str(q.binary), *q.args, "-accel", acc, "-cpu", "max" if acc == "tcg" else "host",
            "-smp", "2", "-m", MEM,
            "-object", f"memory-backend-memfd,id=mem,size={MEM},share=on",
            "-machine", "q35,memory-backend=mem", "-nodefaults", "-no-reboot",
            "-chardev", f"socket,id=c0,path={sock}", "-device", "vhost-user-fs-pci,chardev=c0,tag=myfs",
            "-kernel", str(KERNEL), "-initrd", str(INITRD), "-append", append,
            "-display", "none", "-serial", f"file:{console}",
            "-qmp", f"unix:{qmp},server=on,wait=off", *extra]


def wait_for(path: Path, text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return True
        time.sleep(0.2)
    return False


def main() -> int:
    verbose = "-v" in sys.argv
    qemus = find_qemus()
    q = qemus.get("10.0")
    if q is None:
        print("SKIP: QEMU 10.0 not installed (guest-tests/install-deps.sh)")
        return 0
    info = daemon_info(default_daemon())
    wd = Path(tempfile.mkdtemp(prefix="vhostfsd-gt-migrate-"))
    share = wd / "share"
    share.mkdir()
    prepare_share(share, False)
    procs: list[subprocess.Popen] = []
    daemons = []
    problems: list[str] = []
    t0 = time.monotonic()
    try:
        socks = {k: wd / f"vfs-{k}.sock" for k in "AB"}
        for k in "AB":
            d = Daemon(info, socks[k], share, None, "auto", "none", False, False, 1, wd / f"daemon-{k}.log")
            d.start()
            daemons.append(d)
        cons = {k: wd / f"console-{k}.log" for k in "AB"}
        qmps = {k: wd / f"qmp-{k}.sock" for k in "AB"}
        mig = wd / "migration.sock"
        env = {**os.environ, **q.env}
        for k, extra in (("A", []), ("B", ["-incoming", f"unix:{mig}"])):
            procs.append(subprocess.Popen(qemu_cmd(q, socks[k], cons[k], qmps[k], extra),
                                          stdin=subprocess.DEVNULL, env=env,
                                          stdout=open(wd / f"qemu-{k}.log", "wb"), stderr=subprocess.STDOUT))
        if not wait_for(cons["A"], "MIGRATE-READY", 120):
            raise RuntimeError("the guest never got ready to migrate (console-A.log)")
        qa = Qmp(qmps["A"])
        Qmp(qmps["B"])  # B is up and listening
        log("migrating A -> B")
        qa.cmd("migrate", uri=f"unix:{mig}")
        deadline = time.monotonic() + 180
        while True:
            st = qa.cmd("query-migrate").get("status")
            if st == "completed":
                break
            if st in ("failed", "cancelled") or time.monotonic() > deadline:
                raise RuntimeError(f"migration {st}: {qa.cmd('query-migrate')}")
            time.sleep(0.5)
        log(f"migration completed after {time.monotonic() - t0:.0f}s")
        qa.cmd("quit")
        (share / "migrate-done").touch()
        rc = procs[1].wait(timeout=TIMEOUT)
        if rc != 0:
            problems.append(f"QEMU B exited with status {rc}")
        text = cons["B"].read_text(errors="replace") if cons["B"].exists() else ""
        m = RESULT_RE.search(cons["A"].read_text(errors="replace") + text)
        if not m or m.group(1) != "PASS":
            problems.append(f"guest: {m.group(0) if m else 'no result line'}")
        # Daemon A serves a next frontend (a probe boot).
        if daemons[0].proc.poll() is not None:
            problems.append("daemon A exited after the migration")
        else:
            rc, _ = run_qemu(q, socks["A"], "myfs", 1, "smoke", {}, wd / "console-next.log", 180)
            if rc != 0 or not wait_for(wd / "console-next.log", "PASS smoke", 1):
                problems.append("daemon A did not serve the next frontend")
    except Exception as e:  # noqa: BLE001 - reported as the failure
        problems.append(str(e))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for d in daemons:
            d.stop()
    for k in "AB":
        dl = (wd / f"daemon-{k}.log")
        if dl.exists() and "panicked at" in dl.read_text(errors="replace"):
            problems.append(f"daemon {k} panicked")
    secs = time.monotonic() - t0
    if problems or verbose:
        for name in ("console-A.log", "console-B.log", "daemon-A.log", "daemon-B.log", "qemu-A.log", "qemu-B.log"):
            p = wd / name
            if p.exists():
                print(f"----- {name} -----")
                print("\n".join(p.read_text(errors="replace").splitlines()[-40:]))
    if problems:
        print(f"migrate: FAIL ({secs:.0f}s): " + "; ".join(problems) + f" (work dir {wd})")
        return 1
    print(f"migrate: PASS ({secs:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
