"""Old commit vs this checkout, side by side in one run: ``python -m solution.benchmarks.ab OLD``.

A change that must not cost speed is judged against the commit before it on the same machine in
the same hour, never against figures from another day. This runs the suite's parts from a
detached worktree of ``OLD`` and from this checkout, alternating sides (the HTTP layer, short and
noisy, ``--rounds`` times; the model parts once a side), and writes a table of every target the
suite reports, old and new, with new / old. Both sides run on this checkout's virtualenv and
stand-ins, so only the code differs.

    python -m solution.benchmarks.ab a888e1f --parts http,limit,sweep,service
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from solution.server.config import cpu_has_native_bf16

from . import report

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).with_name("results")


def run_side(checkout: Path, parts: str, out: Path, plan: str, models_dir: str) -> dict[str, Any]:
    """One suite run of ``parts`` with the code of ``checkout``; its JSON document."""
    argv = [sys.executable, "-m", "solution.benchmarks", "bench", "--plan", plan]
    argv += ["--only", parts, "--models-dir", models_dir, "--out", str(out)]
    print(f"== {checkout.name}: {parts}", file=sys.stderr, flush=True)
    subprocess.run(argv, cwd=checkout, env=_env(checkout), check=True, stdout=subprocess.DEVNULL)
    (doc_path,) = out.glob("bench-*-partial.json")
    return dict(json.loads(doc_path.read_text()))


def _env(checkout: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(checkout)}


def table(old: list[dict[str, Any]], new: list[dict[str, Any]], old_ref: str, new_ref: str) -> str:
    """Every ratio target either side reported: median over that side's runs, and new / old."""
    rows: dict[str, tuple[list[float], list[float], str]] = {}
    for side, docs in (("old", old), ("new", new)):
        for doc in docs:
            for row in report.ratios(doc):
                if row["value"] is None or row["met"] is None:
                    continue
                olds, news, _ = rows.setdefault(row["target"], ([], [], row["goal"]))
                (olds if side == "old" else news).append(float(row["value"]))
    lines = [
        f"| target (goal) | old {old_ref} | new {new_ref} | new / old |",
        "|---|---|---|---|",
    ]
    for target, (olds, news, goal) in rows.items():
        a = statistics.median(olds) if olds else None
        b = statistics.median(news) if news else None
        ratio = f"{b / a:.3f}" if a and b else "-"
        lines.append(f"| {target} ({goal}) | {_fmt(olds)} | {_fmt(news)} | {ratio} |")
    lines += ["", "Raw figures (median over runs):", ""]
    lines += [f"- {line}" for line in _raw(old, new)]
    return "\n".join(lines) + "\n"


def _fmt(values: list[float]) -> str:
    if not values:
        return "-"
    runs = ", ".join(f"{v:.3f}" for v in values)
    return f"{statistics.median(values):.3f}" + (f" ({runs})" if len(values) > 1 else "")


def _raw(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    """The absolute numbers behind the ratios, so a reader sees which side moved."""
    probes = {
        "HTTP layer ours, best level (req/s)": lambda d: report._best_http(d, "ours"),
        "HTTP layer uvicorn, best level (req/s)": lambda d: report._best_http(d, "uvicorn"),
        "HTTP layer ours, wrk (req/s)": lambda d: report._get(
            d, "http_layer", "ours", "wrk", "requests_per_s"
        ),
        "HTTP layer uvicorn, wrk (req/s)": lambda d: report._get(
            d, "http_layer", "uvicorn", "wrk", "requests_per_s"
        ),
        "bare limit fp32 (texts/s)": lambda d: report.limit_rps(d),
        "service fp32 at saturation (req/s)": lambda d: report._sat(d, "service-fp32"),
        "service bf16 at saturation (req/s)": lambda d: report._sat(d, "service-bf16"),
    }
    out = []
    for name, probe in probes.items():
        a = [v for v in (probe(d) for d in old) if v is not None]
        b = [v for v in (probe(d) for d in new) if v is not None]
        if a or b:
            out.append(f"{name}: old {_fmt(a)}, new {_fmt(b)}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("old", help="the commit to compare against")
    parser.add_argument("--parts", default="http,limit,sweep,service")
    parser.add_argument("--rounds", type=int, default=2, help="HTTP-layer runs per side")
    parser.add_argument("--plan", default="short")
    parser.add_argument("--models-dir", default=str(ROOT / ".cache" / "standins-base"))
    parser.add_argument("--out", type=Path, default=RESULTS / "ab.md")
    args = parser.parse_args()
    parts = [p for p in args.parts.split(",") if p]
    model_parts = ",".join(p for p in parts if p != "http")
    new_ref = _git("rev-parse", "--short", "HEAD") + (
        "+dirty" if _git("status", "--porcelain") else ""
    )
    old_ref = _git("rev-parse", "--short", args.old)
    old: list[dict[str, Any]] = []
    new: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ab-") as tmp:
        old_tree = Path(tmp) / "old"
        _git("worktree", "add", "--detach", str(old_tree), args.old)
        _same_dtypes(old_tree)
        try:
            sides = ((old_tree, old), (ROOT, new))
            runs = [("http", r) for r in range(args.rounds) if "http" in parts]
            runs += [(model_parts, 0)] if model_parts else []
            for part, r in runs:
                for tree, docs in sides:
                    out = Path(tmp) / f"{tree.name}-{part.replace(',', '+')}-{r}"
                    docs.append(run_side(tree, part, out, args.plan, args.models_dir))
        finally:
            _git("worktree", "remove", "--force", str(old_tree))
    text = f"# A/B: {old_ref} (old) vs {new_ref} (new), one machine, one run\n\n"
    text += table(old, new, old_ref, new_ref)
    args.out.write_text(text)
    (args.out.with_suffix(".json")).write_text(
        json.dumps({"old": old, "new": new}, indent=1, default=str) + "\n"
    )
    print(text)
    return 0


def _same_dtypes(old_tree: Path) -> None:
    """Where the CPU has no native bf16 this checkout's suite measures fp32 only (the server
    refuses bf16 there); an older suite that asks for bf16 anyway gets the same list. Only the
    harness's dtype list changes: the code under test stays the old commit's."""
    if cpu_has_native_bf16():
        return
    suite = old_tree / "solution" / "benchmarks" / "suite.py"
    text = suite.read_text()
    text = text.replace('"fp32,bf16"', '"fp32"').replace('("fp32", "bf16")', '("fp32",)')
    suite.write_text(text)


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
