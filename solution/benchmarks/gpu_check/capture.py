"""Step 3: graph capture for base-size models (shapes, seconds, memory against the budgets), then
graph replay against the eager forward on every captured bucket (relative error at most
``GRAPH_TOLERANCE``: the same kernels, so only nondeterminism separates them)."""

from __future__ import annotations

from typing import Any

import numpy as np

from solution.server.compute import planning
from solution.server.compute.families import Family
from solution.server.compute.planning import FamilyWork, ForwardCall
from solution.server.compute.runner import Runner

from ..gpu_report import Record
from .common import ReplayCounter, Setup, capture_args, forwards_in, run_batch

GRAPH_TOLERANCE = 1e-3  # graph replay vs eager at the same shape: the same kernels


def capture_step(result: dict[str, Any], *, runner: Runner, setup: Setup) -> None:
    result.update(runner.prepare("on", **capture_args(setup)))


def bucket_call(family: Family, vocab: int, rows: int, length: int, seed: int) -> ForwardCall:
    """``rows`` random texts, the first ``length`` tokens long, the others shorter, planned to the
    ``rows x length`` bucket (a runner without that graph runs the same arrays eager)."""
    rng = np.random.default_rng(seed)
    lengths = [length, *rng.integers(1, length + 1, size=rows - 1).tolist()]
    seqs = [rng.integers(3, vocab, size=n).tolist() for n in lengths]
    return planning.forward_call(seqs, range(rows), family.pad_id, (rows, length))


def graphs_vs_eager(
    result: dict[str, Any],
    *,
    record: Record,
    runner: Runner,
    eager: Runner,
    families: list[Family],
) -> None:
    """Every captured bucket of ``runner``, replayed, against ``eager`` (the same models, never
    prepared) on the same call. Replays are counted: a bucket the runner ran eager is reported."""
    configs: list[Any] = [m.model.config for m in runner.models]
    vocabs = [min(int(configs[m].vocab_size) for m in f.members) for f in families]
    worst: dict[str, float] = {m.key: 0.0 for m in runner.models}
    over = missed = 0
    counter = ReplayCounter(runner)
    for i, (rows, length) in enumerate(runner.shapes):
        calls = [bucket_call(f, v, rows, length, i) for f, v in zip(families, vocabs, strict=True)]
        work = [FamilyWork(list(f.members), [c]) for f, c in zip(families, calls, strict=True)]
        before = counter.count
        graph = run_batch(runner, work, rows).logits
        missed += forwards_in(work) - (counter.count - before)
        reference = run_batch(eager, work, rows).logits
        for m, model in enumerate(runner.models):
            n = runner.num_labels[m]
            rel = np.linalg.norm(graph[m, :, :n] - reference[m, :, :n], axis=1) / np.maximum(
                np.linalg.norm(reference[m, :, :n], axis=1), 1e-6
            )
            worst[model.key] = max(worst[model.key], float(rel.max()))
            over += int((rel > GRAPH_TOLERANCE).sum())
    result.update(
        buckets=len(runner.shapes),
        max_rel_error=worst,
        rows_over=over,
        forwards_not_replayed=missed,
    )
    record.check(
        "graphs vs eager on every bucket",
        over == 0 and missed == 0 and bool(runner.shapes),
        f"{len(runner.shapes)} buckets x {len(runner.models)} models, {over} rows over "
        f"{GRAPH_TOLERANCE}, {missed} forwards not replayed",
    )
