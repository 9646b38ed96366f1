"""The check's targets, as ratios from this run (``targets`` in the JSON), and the no-failure
checks of the load steps. The served-path targets are ``benchmarks.served``'s."""

from __future__ import annotations

from ..gpu_report import Record


def targets(record: Record) -> None:
    steps = record.doc["steps"]
    rows = {(r["batch"], r["path"]): r for r in steps.get("timing", {}).get("rows", [])}
    eager, graph = rows.get((1, "eager, five streams")), rows.get((1, "graphs"))
    if eager and graph:
        ratio = eager["enqueue_ms"] / graph["enqueue_ms"]
        record.target(
            "host time per call set at batch 1, eager / graphs", ratio, ">= 3", ratio >= 3
        )
    engine = steps.get("engine", {})
    p50 = engine.get("low_load", {}).get("latency_ms", {}).get("p50")
    if p50 is not None and graph:
        bound = 1.5 * graph["wall_ms"] + 2.0
        record.target(
            "in-process engine, low-load p50 / (1.5 x graph replay of the five models + 2 ms)",
            p50 / bound,
            f"<= 1 (p50 {p50:.1f} ms, replay {graph['wall_ms']:.2f} ms)",
            p50 <= bound,
        )
    # In-process figures: Engine.submit with no sockets, so no served target is judged on them.
    sat = engine.get("saturation", {}).get("throughput_rps")
    best = steps.get("limit", {}).get("best", {}).get("texts_per_s")
    if sat and best:
        record.target(
            "in-process engine saturation / graph limit (not what a client sees)",
            sat / best,
            "reported only",
            None,
        )
    peer = steps.get("winner", {}).get("saturation", {}).get("throughput_rps")
    if sat and peer:
        record.target(
            "in-process engine / in-process winner-style peer", sat / peer, "reported only", None
        )
    for name in ("engine", "winner"):
        for level, run in steps.get(name, {}).items():
            if isinstance(run, dict) and "failed" in run:
                record.check(
                    f"{name} {level}: no failed request",
                    run["failed"] == 0,
                    f"{run['failed']} failed of {run['sent']}",
                )
    record.save()
