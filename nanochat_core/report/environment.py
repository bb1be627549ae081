"""The report card's header: where and with what the run happened (git, machine, versions)."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path


def git_info(cwd: Path | None = None) -> dict | None:
    """{commit, dirty} of the repository holding our code (or cwd); None outside a git checkout."""
    cwd = cwd or Path(__file__).resolve().parent

    def git(*args):
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return None
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip()) if dirty.returncode == 0 else None}
    except (OSError, subprocess.TimeoutExpired):
        return None  # no git binary, or a hung filesystem: the report goes on without it


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    except (ValueError, OSError, AttributeError):
        return None  # not POSIX (or not exposed): leave it out


def gpu_info() -> list[dict]:
    import torch

    if not torch.cuda.is_available():
        return []
    return [{"name": torch.cuda.get_device_name(i),
             "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / 2 ** 30, 1)}
            for i in range(torch.cuda.device_count())]


def environment(start_time: datetime | None = None) -> dict:
    import torch

    now = datetime.now(timezone.utc)
    mem = memory_gib()
    return {
        "generated_at": now.isoformat(timespec="seconds"),
        "start_time": start_time.isoformat(timespec="seconds") if start_time else None,
        "git": git_info(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "memory_gib": round(mem, 1) if mem else None,
        "gpus": gpu_info(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
    }
