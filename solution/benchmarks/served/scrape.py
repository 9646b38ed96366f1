"""``GET /metrics`` before and after each load: how many forward calls ran from CUDA graphs and
how many eager, and the GPU's busy time. A counter the server does not export is reported as
missing (None), never as zero."""

from __future__ import annotations

import re
import urllib.request
from typing import Any

FORWARD_CALLS = "classifier_forward_calls_total"
GPU_BUSY = "classifier_gpu_busy_seconds_total"
_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eEinfINFaN]+)")
_PATH = re.compile(r'path="([^"]*)"')


def parse(text: str) -> dict[str, Any]:
    """{"graph": n, "eager": n, "gpu_busy_s": s}, each None when not exported."""
    calls: dict[str, float] = {}
    busy: float | None = None
    for line in text.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        name, labels, value = match.group(1), match.group(2) or "", float(match.group(3))
        if name == FORWARD_CALLS:
            path = _PATH.search(labels)
            key = path.group(1) if path else ""
            calls[key] = calls.get(key, 0.0) + value
        elif name == GPU_BUSY:
            busy = (busy or 0.0) + value
    return {"graph": calls.get("graph"), "eager": calls.get("eager"), "gpu_busy_s": busy}


def scrape(base_url: str, timeout_s: float = 5.0) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"{base_url}/metrics", timeout=timeout_s) as response:
            return parse(response.read().decode("utf-8", "replace"))
    except OSError as exc:
        return {"graph": None, "eager": None, "gpu_busy_s": None, "error": repr(exc)}


def delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Counts during one load; the share of forwards from graphs; None where either scrape lacks
    the counter."""
    out: dict[str, Any] = {}
    for key in ("graph", "eager", "gpu_busy_s"):
        a, b = before.get(key), after.get(key)
        out[key] = None if a is None or b is None else b - a
    graph, eager = out["graph"], out["eager"]
    total = None if graph is None or eager is None else graph + eager
    out["graph_share"] = graph / total if total else None
    out["missing"] = [k for k in (FORWARD_CALLS, GPU_BUSY) if _absent(k, before, after)]
    return out


def _absent(name: str, before: dict[str, Any], after: dict[str, Any]) -> bool:
    keys = ("graph", "eager") if name == FORWARD_CALLS else ("gpu_busy_s",)
    return any(d.get(k) is None for d in (before, after) for k in keys)
