"""Step 4: one call set of the five models at a few batch sizes, per path (eager on one stream,
eager on five streams, graphs): host enqueue time beside the batch's wall time and its GPU span,
so launch-bound (GPU span about the host's enqueue) and compute-bound are told apart.

The GPU span runs from an event recorded on the batch's main stream before its inputs are
uploaded to one recorded there after every model stream has joined it and before the results are
copied to the host: device time for the batch, not the host's wait for the copy. Whether a row
ran in graphs is counted from the replays made, per forward."""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from solution.server.compute import planning
from solution.server.compute.families import Family
from solution.server.compute.planning import FamilyWork
from solution.server.compute.runner import Runner
from solution.server.compute.streams import CudaStreams, Upload

from .common import ReplayCounter, forwards_in, run_batch

TIMING_BATCHES = (1, 8, 32, 128)


class SpanStreams(CudaStreams):
    """The runner's CUDA streams, with two events on the main stream: before the batch's upload
    and before its one download."""

    def __init__(self, device: torch.device, per_model: bool = True):
        super().__init__(device, per_model)
        self.begin: torch.cuda.Event | None = None
        self.end: torch.cuda.Event | None = None

    def upload(self, arrays: Sequence[np.ndarray]) -> Upload:
        self.begin = torch.cuda.Event(enable_timing=True)
        self.begin.record(self.current())
        return super().upload(arrays)

    def download(self, tensor: torch.Tensor) -> np.ndarray:
        self.end = torch.cuda.Event(enable_timing=True)
        self.end.record(self.current())  # after every model stream joined main, before the copy
        return super().download(tensor)

    def span_ms(self) -> float | None:
        """Read after the batch returned: its download waited past ``end``."""
        if self.begin is None or self.end is None:
            return None
        return float(self.begin.elapsed_time(self.end))


def timed(runner: Runner, work: list[FamilyWork], rows: int) -> dict[str, float | None]:
    out = run_batch(runner, work, rows)
    ops = runner.ops
    return {
        "enqueue_ms": 1000 * out.enqueue_s,
        "wall_ms": 1000 * out.wall_s,
        "gpu_span_ms": ops.span_ms() if isinstance(ops, SpanStreams) else None,
        "gpu_model_sum_ms": 1000 * sum(out.gpu_seconds),
    }


def span_ops(device: torch.device, per_model: bool = True) -> SpanStreams | None:
    """The ops a timed runner is built with: events on CUDA; the runner's default on the CPU."""
    return SpanStreams(device, per_model) if device.type == "cuda" else None


def runners(graphs: Runner) -> list[tuple[str, Runner]]:
    """The three paths on the same models: two never-prepared (eager) runners and ``graphs``
    (built with ``span_ops``, its graphs captured)."""
    device = graphs.device
    eager_one = Runner(graphs.models, device, ops=span_ops(device, per_model=False))
    eager_five = Runner(graphs.models, device, ops=span_ops(device))
    return [
        ("eager, one stream", eager_one),
        ("eager, five streams", eager_five),
        ("graphs", graphs),
    ]


def timing(
    result: dict[str, Any],
    *,
    args: argparse.Namespace,
    runner: Runner,
    families: list[Family],
    texts: list[str],
) -> None:
    cuda = runner.device.type == "cuda"
    paths = runners(runner)
    counters = {name: ReplayCounter(r) for name, r in paths}
    rows_out = []
    for batch in [int(b) for b in args.timing_batches.split(",")]:
        chunk = texts[:batch]
        ids = [f.encode(chunk) for f in families]
        for path, r in paths:
            # eager: one call per family; graphs: cut to the runner's buckets, as the server does
            work = planning.plan(ids, families, range(batch), 1 << 20, batch, None, r.buckets).work
            for _ in range(2):
                run_batch(r, work, batch)  # warm-up
            counter = counters[path]
            before = counter.count
            runs = 20 if cuda else 5
            samples = [timed(r, work, batch) for _ in range(runs)]
            row: dict[str, Any] = {"batch": batch, "path": path}
            for field in samples[0]:
                values = [v for s in samples if (v := s[field]) is not None]
                row[field] = statistics.median(values) if values else None
            row["graph_share"] = (counter.count - before) / (runs * forwards_in(work))
            rows_out.append(row)
    result["rows"] = rows_out
