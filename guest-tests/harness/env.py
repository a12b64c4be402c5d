"""Where the guest assets live, the guest's result line, and the runner's log."""

from __future__ import annotations

import re
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent  # guest-tests/
REPO = HERE.parent
CACHE = HERE / ".cache"
KERNEL = CACHE / "vmlinuz"
INITRD = CACHE / "initramfs.cpio.gz"
CHECKER = CACHE / "checker"
RESULT_RE = re.compile(r"VHOSTFSD-GUEST-RESULT: (PASS|FAIL) (\S+) (.*)")
MEM = "512M"

# Seconds a workload may take under TCG before the VM is killed.
WORKLOAD_TIMEOUT = {"dax": 400, "smoke": 120, "semantics": 300, "fio": 900, "readonly": 180, "demo": 120, "daxdemo": 240,
                    "probe": 60}


def log(msg: str) -> None:
    print(f"runner: {msg}", flush=True)
