"""The test matrix: the cases, running one case, and the summary."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import time
from pathlib import Path

from harness.checks import dax_counter_check, fio_figures, host_checks
from harness.daemon import Daemon, DaemonInfo, daemon_info
from harness.env import RESULT_RE, WORKLOAD_TIMEOUT, log
from harness.qemu import Qemu, qemu_errors, run_qemu
from harness.share import HostActor, prepare_share, snapshot

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
    tag = "myfs" if case.dax else None  # the generic device reads the tag from the config space
    d = Daemon(info, sock, share, tag, case.cache, case.sandbox, case.xattr, case.readonly, case.queues, dlog)
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
        problems += host_checks(case.workload, case.xattr, share, text, before)
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


def print_perf(outcomes: list[Outcome]) -> None:
    for o in outcomes:
        figs = fio_figures(o.console)
        perf = {k: v for k, v in figs.items() if not "verify" in k and k != "perf-prepare"}
        if perf:
            print(f"fio throughput, {o.case.name}:")
            for k, v in perf.items():
                rw = "read" if v["read_kibs"] else "write"
                print(f"  {k:28} {v[rw + '_kibs'] / 1024:9.1f} MiB/s {v[rw + '_iops']:10.0f} IOPS")


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
