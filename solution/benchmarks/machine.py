"""What a result was measured on, and how much of the machine other work took meanwhile."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

_CLOCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def machine_info() -> dict[str, Any]:
    cpuinfo = _read("/proc/cpuinfo")
    lines = cpuinfo.splitlines()
    model = next(
        (line.split(":", 1)[1].strip() for line in lines if "model name" in line),
        platform.processor(),
    )
    flags = set(next((line.split(":", 1)[1].split() for line in lines if "flags" in line), []))
    meminfo = _read("/proc/meminfo").splitlines()
    mem_kb = next((int(line.split()[1]) for line in meminfo if "MemTotal" in line), 0)
    info: dict[str, Any] = {
        "cpu": model,
        "cores": os.cpu_count(),
        "cpu_flags": sorted(f for f in flags if f.startswith(("avx512_bf16", "amx", "avx512f"))),
        "memory_gib": round(mem_kb / 2**20, 1),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain")),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        import torch
        import transformers

        info["torch"] = torch.__version__
        info["transformers"] = transformers.__version__
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return info


class CpuShare:
    """CPU time used by this process tree versus everything else, between start and ``stop``.

    Read from /proc: the machine's busy time (``/proc/stat``) minus our own (this process, its
    reaped children, its live descendants). ``others_cores`` is the average number of cores that
    other work kept busy, which is what to quote when the machine was shared."""

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.busy = _busy_ticks()
        self.ours = _tree_ticks(os.getpid())

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self.wall
        busy = (_busy_ticks() - self.busy) / _CLOCK
        ours = (_tree_ticks(os.getpid()) - self.ours) / _CLOCK
        others = max(busy - ours, 0.0)
        return {
            "wall_s": round(wall, 1),
            "ours_cpu_s": round(ours, 1),
            "others_cpu_s": round(others, 1),
            "others_cores": round(others / wall, 2) if wall else 0.0,
        }


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip()


def _busy_ticks() -> int:
    line = _read("/proc/stat").splitlines()[:1]
    if not line:
        return 0
    values = [int(v) for v in line[0].split()[1:]]
    # user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait
    return sum(values) - values[3] - (values[4] if len(values) > 4 else 0)


def _stat_fields(pid: int) -> list[str]:
    raw = _read(f"/proc/{pid}/stat")
    return raw[raw.rfind(")") + 2 :].split() if raw else []


def _tree_ticks(root: int) -> int:
    """utime+stime+cutime+cstime of ``root`` and its live descendants."""
    parent: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if len(fields) < 15:
            continue
        # after the command: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
        parent[int(entry.name)] = int(fields[1])
        ticks[int(entry.name)] = sum(int(f) for f in fields[11:15])
    total = 0
    for pid, t in ticks.items():
        p = pid
        while p and p != root:
            p = parent.get(p, 0)
        if p == root:
            total += t
    return total
