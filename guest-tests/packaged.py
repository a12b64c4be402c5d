#!/usr/bin/env python3
"""Guest tests of the installed package (run by packaging/test-package.sh).

    packaged.py unit [--instance NAME]     the systemd unit's command line, socket-activated
    packaged.py libvirt                    libvirt starts vhostfsd from the vhost-user descriptor

`unit`: the ExecStart of the installed vhostfsd@.service, with the settings of
/etc/vhostfsd/NAME.conf (the packaged example with SHARED_DIR pointing at a fresh share),
runs under systemd-socket-activate on the installed vhostfsd@.socket's ListenStream
(LISTEN_FDS, as systemd passes it; the daemon starts on the first connection) with a
NOTIFY_SOCKET; a guest runs the smoke workload against it, the runner's host checks follow,
READY=1 must have reached NOTIFY_SOCKET and STOPPING=1 must follow SIGTERM. (No systemd runs as pid 1 on CI machines, so the unit itself cannot be started.)

`libvirt`: a transient domain (type qemu: TCG) with memfd shared memory and
<filesystem type='mount'><driver type='virtiofs'/> without a binary path, so libvirt picks
the daemon from /usr/share/qemu/vhost-user/, runs it with --print-capabilities, creates the
socket and starts it with --fd and the flags of the domain XML. The guest runs the smoke
workload; the daemon command line libvirt logged is printed and checked.

Python 3 standard library only; root; the guest assets from build-assets.sh.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.checks import host_checks
from harness.daemon import Daemon
from harness.env import INITRD, KERNEL, RESULT_RE, WORKLOAD_TIMEOUT, log
from harness.matrix import Case
from harness.qemu import find_qemus, run_qemu
from harness.share import prepare_share

UNIT_DIR = Path("/usr/lib/systemd/system")
INSTALLED = Path("/usr/libexec/vhostfsd")
EXAMPLE_CONF = Path("/usr/share/doc/vhostfsd/examples/vhostfsd.conf")
DESCRIPTOR = Path("/usr/share/qemu/vhost-user/50-vhostfsd.json")
VIRSH = ["virsh", "-q", "-c", "qemu:///system"]
# The smoke workload (host-prepared files checked in the guest, guest-written files checked on
# the host): the guest matrix runs the long workloads; these boots check the integration.
WORKLOAD = "smoke"
TIMEOUT = WORKLOAD_TIMEOUT["semantics"]


def unit_value(unit: Path, key: str) -> str:
    """The value of the (last) `key=` line of a unit file."""
    values = [line.split("=", 1)[1] for line in unit.read_text().splitlines() if line.startswith(key + "=")]
    if not values:
        sys.exit(f"packaged: {unit} has no {key}=")
    return values[-1]


def environment_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile= reads them (quotes removed, no expansion)."""
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        key, value = line.split("=", 1)
        words = shlex.split(value)
        env[key.strip()] = " ".join(words)
    return env


def exec_start(service: Path, instance: str, env: dict[str, str]) -> list[str]:
    """ExecStart= expanded as systemd does: %i, ${VAR} as one word, $VAR split on spaces."""
    out: list[str] = []
    for word in shlex.split(unit_value(service, "ExecStart").replace("%i", instance)):
        if m := re.fullmatch(r"\$\{(\w+)\}", word):
            out.append(env.get(m.group(1), ""))
        elif m := re.fullmatch(r"\$(\w+)", word):
            out += env.get(m.group(1), "").split()
        else:
            out.append(word)
    return out


def boot_guest(sock: Path, share: Path, wd: Path) -> list[str]:
    """Boots the guest with the smoke workload against `sock`; returns the problems."""
    qemus = find_qemus()
    qemu = qemus.get("10.0") or next(iter(qemus.values()))
    console = wd / "console.log"
    case = Case(WORKLOAD, qemu.version)
    args = {"xattr": "0", "cache": "auto", "size": case.size}
    rc, secs = run_qemu(qemu, sock, "myfs", 1, WORKLOAD, args, console, TIMEOUT)
    return check_console(console, case, share, rc, secs)


def check_console(console: Path, case: Case, share: Path, rc: int | None, secs: float) -> list[str]:
    text = console.read_text(errors="replace") if console.exists() else ""
    m = RESULT_RE.search(text)
    problems = []
    if rc not in (0, None) and not m:
        problems.append(f"VM exited with status {rc}")
    if not m:
        problems.append(f"no VHOSTFSD-GUEST-RESULT line on the console after {secs:.0f}s")
    elif m.group(1) != "PASS":
        problems.append(f"guest: {m.group(3)}")
    else:
        problems += host_checks(case.workload, case.xattr, share, text, None)
    if problems:
        print("\n".join(text.splitlines()[-60:]))
    else:
        log(f"guest: {m.group(0)}")
    return problems


# --------------------------------------------------------------------------------------------
# The systemd unit's command line


def test_unit(instance: str, wd: Path) -> list[str]:
    service, sockunit = UNIT_DIR / "vhostfsd@.service", UNIT_DIR / "vhostfsd@.socket"
    envfile = Path(unit_value(service, "EnvironmentFile").lstrip("-").replace("%i", instance))
    sock = Path(unit_value(sockunit, "ListenStream").replace("%i", instance))
    share = wd / "share"
    share.mkdir()
    prepare_share(share, False)
    # The packaged example, pointed at the fresh share, as the admin would install it.
    conf = re.sub(r"(?m)^SHARED_DIR=.*$", f"SHARED_DIR={share}", EXAMPLE_CONF.read_text())
    envfile.parent.mkdir(parents=True, exist_ok=True)
    envfile.write_text(conf)
    sock.parent.mkdir(parents=True, exist_ok=True)
    notify_path = wd / "notify"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.settimeout(30)
    try:
        cmd = exec_start(service, instance, environment_file(envfile))
        log(f"{service.name} ExecStart for {instance}: {shlex.join(cmd)}")
        if Path(cmd[0]) != INSTALLED:
            return [f"ExecStart runs {cmd[0]}, not the installed {INSTALLED}"]
        logfile = wd / "daemon.log"
        # systemd-socket-activate hands the daemon only LISTEN_* and the -E variables.
        activate = ["systemd-socket-activate", "-l", str(sock), "-E", f"NOTIFY_SOCKET={notify_path}"]
        daemon = Daemon.from_command([*activate, *cmd], sock, logfile)
        daemon.start()
        problems: list[str] = []
        try:
            # As with systemd, the daemon starts on the first connection: the VMM's.
            problems += boot_guest(sock, share, wd)
            try:
                msg = notify.recv(4096).decode(errors="replace")
                log(f"NOTIFY_SOCKET got {msg!r}")
                if not msg.startswith("READY=1"):
                    problems.append(f"first notification is {msg!r}, not READY=1")
            except TimeoutError:
                problems.append("no READY=1 on NOTIFY_SOCKET")
        finally:
            rc = daemon.stop()
        if rc is not None:
            problems.append(f"the daemon exited by itself (status {rc}) when the VM went away")
        elif daemon.returncode != 0:
            problems.append(f"the daemon exited with status {daemon.returncode} on SIGTERM")
        try:
            msg = notify.recv(4096).decode(errors="replace")
            if msg != "STOPPING=1":
                problems.append(f"notification on SIGTERM is {msg!r}, not STOPPING=1")
        except TimeoutError:
            problems.append("no STOPPING=1 on SIGTERM")
        if problems:
            print(logfile.read_text(errors="replace")[-3000:])
        return problems
    finally:
        notify.close()
        envfile.unlink(missing_ok=True)
        sock.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# libvirt


def virsh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([*VIRSH, *args], capture_output=True, text=True, timeout=120, check=check)


def ensure_libvirtd() -> None:
    """Starts libvirtd when nothing answers on qemu:///system (no systemd on CI machines)."""
    if virsh("version", check=False).returncode == 0:
        return
    log("starting libvirtd -d")
    subprocess.run(["libvirtd", "-d"], check=True, timeout=60)
    deadline = time.monotonic() + 30
    while virsh("version", check=False).returncode != 0:
        if time.monotonic() > deadline:
            sys.exit("packaged: libvirtd does not answer on qemu:///system")
        time.sleep(0.5)


def domain_xml(name: str, share: Path, console: Path, cmdline: str, openfiles: int) -> str:
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>512</memory>
  <vcpu>2</vcpu>
  <memoryBacking>
    <source type='memfd'/>
    <access mode='shared'/>
  </memoryBacking>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{KERNEL}</kernel>
    <initrd>{INITRD}</initrd>
    <cmdline>{cmdline}</cmdline>
  </os>
  <cpu mode='maximum'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <filesystem type='mount' accessmode='passthrough'>
      <driver type='virtiofs' queue='1024'/>
      <binary xattr='on'>
        <cache mode='none'/>
        <sandbox mode='chroot'/>
        <thread_pool size='2'/>
        <openfiles max='{openfiles}'/>
      </binary>
      <source dir='{share}'/>
      <target dir='myfs'/>
    </filesystem>
    <serial type='file'>
      <source path='{console}'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def test_libvirt(wd: Path) -> list[str]:
    ensure_libvirtd()
    name = f"vhostfsd-ci-{os.getpid()}"
    share = wd / "share"
    share.mkdir()
    prepare_share(share, False)
    console = wd / "console.log"
    case = Case(WORKLOAD, "libvirt", cache="never", xattr=True)
    vtargs = f"xattr=1,cache=never,size={case.size}"
    cmdline = f"console=ttyS0 panic=-1 quiet vt.workload={WORKLOAD} vt.tag=myfs vt.args={vtargs}"
    xml = wd / "domain.xml"
    # libvirt passes <openfiles> as --rlimit-nofile; raising the hard limit needs
    # CAP_SYS_RESOURCE, which CI containers may lack: stay within the current hard limit.
    openfiles = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 16384)
    xml.write_text(domain_xml(name, share, console, cmdline, openfiles))
    t0 = time.monotonic()
    r = virsh("create", str(xml), check=False)
    if r.returncode != 0:
        return [f"virsh create failed: {r.stderr.strip() or r.stdout.strip()}"]
    log(f"libvirt started domain {name}")
    while virsh("domstate", name, check=False).returncode == 0:
        if time.monotonic() - t0 > TIMEOUT:
            virsh("destroy", name, check=False)
            break
        time.sleep(1)
    secs = time.monotonic() - t0
    problems = check_console(console, case, share, None, secs)
    problems += check_libvirt_daemon_log(name)
    return problems


def check_libvirt_daemon_log(name: str) -> list[str]:
    """libvirt logs the daemon's command line in the domain's log, LOGDIR/DOMAIN.log, and the
    daemon's own output in LOGDIR/DOMAIN-ALIAS-virtiofsd.log."""
    logdir = Path("/var/log/libvirt/qemu")
    domain_log = logdir / f"{name}.log"
    text = domain_log.read_text(errors="replace") if domain_log.exists() else ""
    cmdlines = [line for line in text.splitlines() if line.startswith(str(INSTALLED))]
    if not cmdlines:
        print(text[-3000:])
        return [f"{domain_log} does not show {INSTALLED} being started (descriptor not used?)"]
    log(f"libvirt ran: {cmdlines[-1]}")
    problems = []
    for flag in ("--fd=", "--shared-dir", "--cache never", "--xattr", "--sandbox chroot",
                 "--thread-pool-size=2", "--rlimit-nofile=", "--log-level debug"):
        if flag not in cmdlines[-1]:
            problems.append(f"libvirt's command line has no {flag}")
    daemon_logs = sorted(logdir.glob(f"{name}-*-virtiofsd.log"))
    daemon_text = daemon_logs[-1].read_text(errors="replace") if daemon_logs else ""
    if "panicked" in daemon_text or " ERROR " in daemon_text:
        print(daemon_text[-3000:])
        problems.append(f"errors in {daemon_logs[-1]}")
    return problems


# --------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("test", choices=["unit", "libvirt"])
    ap.add_argument("--instance", default=f"ci{os.getpid()}")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("packaged: must run as root")
    for f in (KERNEL, INITRD, INSTALLED):
        if not f.exists():
            sys.exit(f"packaged: {f} missing (install the package; run guest-tests/build-assets.sh)")
    wd = Path(tempfile.mkdtemp(prefix=f"vhostfsd-pkg-{args.test}-", dir=os.environ.get("GT_TMPDIR")))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    problems = test_unit(args.instance, wd) if args.test == "unit" else test_libvirt(wd)
    for p in problems:
        log(f"FAIL: {p}")
    if problems:
        log(f"work files kept in {wd}")
        return 1
    shutil.rmtree(wd, ignore_errors=True)
    log(f"{args.test}: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
