"""The GPU check's record: one JSON document and its Markdown reading, both rewritten after every
step, so a run killed at its time limit still leaves everything measured up to then.

A step that raises is recorded as failed (with the error) and the run goes on with the next;
targets are printed as ratios, each beside its goal, from this run alone.
"""

from __future__ import annotations

import contextlib
import json
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class Record:
    def __init__(self, out: Path, name: str, doc: dict[str, Any]):
        self.out = out
        self.name = name
        self.doc = doc
        doc.setdefault("steps", {})
        doc.setdefault("checks", {})
        doc.setdefault("targets", {})
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[dict[str, Any]]:
        """A step's results go into the dict this yields; its status and time are added."""
        result: dict[str, Any] = {}
        self.doc["steps"][name] = result
        start = time.perf_counter()
        try:
            yield result
            result["status"] = result.get("status", "ok")
        except Exception as exc:
            result["status"] = "failed"
            result["error"] = f"{type(exc).__name__}: {exc}"
            result["traceback"] = traceback.format_exc(limit=8)
            self.check(f"{name} ran", False, result["error"])
        finally:
            result["seconds"] = round(time.perf_counter() - start, 2)
            self.save()

    def skip(self, name: str, why: str) -> None:
        self.doc["steps"][name] = {"status": "skipped", "why": why}
        self.save()

    def check(self, name: str, passed: bool, detail: str = "") -> bool:
        self.doc["checks"][name] = {"passed": bool(passed), "detail": detail}
        return passed

    def target(self, name: str, value: float | None, goal: str, met: bool | None) -> None:
        """A speed target: ratios are printed, never asserted by a test."""
        self.doc["targets"][name] = {"value": value, "goal": goal, "met": met}

    def passed(self) -> bool:
        return all(c["passed"] for c in self.doc["checks"].values())

    def save(self) -> None:
        self.doc["wall_s"] = round(self.elapsed(), 1)
        self.doc["checks_passed"] = self.passed()
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / f"{self.name}.json").write_text(json.dumps(self.doc, indent=2) + "\n")
        (self.out / f"{self.name}.md").write_text(render(self.doc))


def _f(value: Any, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render(doc: dict[str, Any]) -> str:
    """The Markdown reading of the document (whatever steps it has so far)."""
    steps = doc.get("steps", {})
    lines = [
        f"### GPU check: {doc.get('device')}",
        "",
        f"torch {doc.get('torch')}, transformers {doc.get('transformers')}, "
        f"python {doc.get('python')}; {doc.get('wall_s')} s; "
        f"checks passed: **{doc.get('checks_passed')}**.",
        "",
        "| step | status | seconds |",
        "|---|---|---|",
    ]
    for name, step in steps.items():
        status = step.get("status", "running")
        detail = step.get("error") or step.get("why") or ""
        lines.append(f"| {name} | {status} {detail} | {step.get('seconds', '')} |")
    lines += _parity(steps.get("parity", {})) + _timing(steps.get("timing", {}))
    lines += _limit(steps.get("limit", {}))
    lines += ["", "| check | passed | detail |", "|---|---|---|"]
    for name, c in doc.get("checks", {}).items():
        lines.append(f"| {name} | {c['passed']} | {c['detail']} |")
    lines += ["", "| target | value | goal | met |", "|---|---|---|---|"]
    for name, t in doc.get("targets", {}).items():
        lines.append(f"| {name} | {_f(t['value'])} | {t['goal']} | {t['met']} |")
    return "\n".join(lines) + "\n"


def _parity(parity: dict[str, Any]) -> list[str]:
    comparisons = parity.get("comparisons", {})
    if not comparisons:
        return []
    lines = [
        "",
        "Parity, row by row against a per-text fp32 forward on the CPU: relative logit "
        "error of each model's whole output and of its worst row (norm floored at the median):",
        "",
        "| path | model | ‖Δ‖/‖ref‖ | worst row | rows over tol. | label agreement |",
        "|---|---|---|---|---|---|",
    ]
    for path, per_model in comparisons.items():
        for key, c in per_model.items():
            lines.append(
                f"| {path} | {key} | {c['rel_error']:.2e} | {c['max_rel_error']:.2e} | "
                f"{c['rows_over']} / {c['rows']} | {100 * c['label_agreement']:.1f}% |"
            )
    return lines


def _timing(timing: dict[str, Any]) -> list[str]:
    rows = timing.get("rows", [])
    if not rows:
        return []
    lines = [
        "",
        "One call set of the five models (medians): host enqueue beside the batch's GPU span "
        "(CUDA events on its main stream, from before the upload to before the results' copy); "
        "launch-bound when the GPU span is about the host's enqueue. 'in graphs': the share of "
        "forwards that were graph replays, counted.",
        "",
        "| batch | path | in graphs | host enqueue ms | batch wall ms | GPU span ms "
        "| GPU ms, sum per model |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        share = r.get("graph_share")
        in_graphs = "n/a" if share is None else f"{100 * share:.0f}%"
        lines.append(
            f"| {r['batch']} | {r['path']} | {in_graphs} | {_f(r['enqueue_ms'])} | "
            f"{_f(r['wall_ms'])} | {_f(r.get('gpu_span_ms'))} | {_f(r['gpu_model_sum_ms'])} |"
        )
    return lines


def _limit(limit: dict[str, Any]) -> list[str]:
    runs = limit.get("runs", [])
    if not runs:
        return []
    tokens = ", ".join(f"{k} {v}" for k, v in limit.get("tokens_per_text", {}).items())
    lines = [
        "",
        f"Graph limit on the load's {limit.get('texts')} texts (tokens per text: {tokens}): "
        "graph replays of the five models on their streams, chunks of B texts sorted by length, "
        "each in the smallest bucket that holds it; one graph replay of the five at B=1: "
        f"{_f(limit.get('one_replay_ms'))} ms.",
        "",
        "| B | texts/s | buckets | bucket tokens / text tokens |",
        "|---|---|---|---|",
    ]
    best = limit.get("best", {}).get("rows")
    for r in runs:
        mark = " (best)" if r["rows"] == best else ""
        lines.append(
            f"| {r['rows']}{mark} | {_f(r.get('texts_per_s'), 1)} | "
            f"{' '.join(r.get('buckets', [])) or r.get('status', '')} | "
            f"{_f(r.get('padding_ratio'))} |"
        )
    return lines
