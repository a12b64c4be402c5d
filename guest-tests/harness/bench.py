"""Benchmarks, not tests: vhostfsd against another daemon, DAX against no DAX, and the
DAX host-truncation hazard."""

from __future__ import annotations

import os
import statistics
import threading
import time
from pathlib import Path

from harness.checks import fio_figures
from harness.daemon import Daemon, dax_daemon, daemon_info
from harness.env import RESULT_RE, log
from harness.qemu import Qemu, accel, dax_qemu, run_qemu
from harness.share import DAX_HOST_MMAP, pattern, prepare_share

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
            d = Daemon(info, wd / "s.sock", share, None, args.cache, "none", False, False, 1, wd / "daemon.log")
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


def dax_bench(args, qemus: dict[str, Qemu], workroot: Path) -> int:
    """The same fio jobs with -o dax=always and without, alternating, on one daemon with a DAX
    window (QEMU 11.1); prints medians and the DAX/no-DAX ratio per job."""
    qemu = dax_qemu(qemus, "--dax-bench")
    if qemu is None:
        return 1
    wd = workroot / "dax-bench"
    share = wd / "share"
    share.mkdir(parents=True)
    d = dax_daemon(wd, share, "1G")
    d.start()
    figures: dict[str, dict[str, list[float]]] = {"dax": {}, "nodax": {}}
    try:
        for r in range(args.rounds):
            for mode in ("dax", "nodax"):
                console = wd / f"console-{mode}-{r}.log"
                rc, secs = run_qemu(qemu, wd / "s.sock", "myfs", 1, "daxbench",
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
    qemu = dax_qemu(qemus, "--dax-hazard")
    if qemu is None:
        return 1
    wd = workroot / "dax-hazard"
    share = wd / "share"
    share.mkdir(parents=True)
    name, size, seed = DAX_HOST_MMAP
    (share / name).write_bytes(pattern(size, seed))
    d = dax_daemon(wd, share, "64M")
    d.start()
    console = wd / "console.log"
    result: list = []
    t = threading.Thread(target=lambda: result.append(run_qemu(
        qemu, wd / "s.sock", "myfs", 1, "daxhazard", {}, console, 300,
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
