"""CUDA graphs per model and shape bucket: captured once at start-up, replayed from static buffers.

An eager HF forward is ~200 kernel launches and ~5 ms of host time per model (25-29 ms for the
five on an H200, at every batch size); replaying a graph costs microseconds, which is the whole
forward at small batches. Per model, one graph per bucket
of ``buckets.BucketGrid``, all in one memory pool per model (graphs of a model never run at the
same time: they are replayed on that model's stream only).

Rules that keep replays correct:
- the static inputs (ids, a (B, 1, 1, L) boolean mask) are written only on the model's stream,
  right before its replay, and the static output is read on that stream right after it: stream
  order, not host timing, keeps a buffer from being overwritten while a replay may still read it,
  and keeps the next replay (which reuses the pool) from overwriting an output not yet read;
- calls the planner did not cut to a captured bucket run eager; a capture that fails turns
  graphs off (``CLS_CUDA_GRAPHS=auto``) or stops the start (``on``).

Capture is bounded by a time and a memory budget (``capture_all``), cheapest shapes first. Then
``measure_costs`` times replay and eager on the device for the planner's cost table.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import torch

from solution.server.compute.buckets import Shape
from solution.server.compute.costs import Sample

log = logging.getLogger(__name__)

# Start-up budget for capturing: readiness waits for it, and the probes allow a couple of minutes.
CAPTURE_TIME_BUDGET_S = 60.0
# Share of the device memory free after loading that the graph pools may take: the rest stays
# for eager calls (the largest micro-batch's activations) and the caching allocator's slack.
CAPTURE_MEMORY_FRACTION = 0.25
# ... and at most this much on any card. A pool holds about the activations of its model's largest
# shape (~0.3 GB for a base encoder at 16,384 fp16 tokens; the grid's cap) plus the small static
# buffers; the figure counted also holds each capture's eager warm-up run, cached by the
# allocator. On a 16 GB T4, after five fp16 base models (2.4 GB) and the CUDA context, the
# fraction above gives ~3.3 GB; this cap keeps a large GPU from capturing without bound.
CAPTURE_MEMORY_BYTES = 6 << 30
# Start-up time for timing the captured shapes (``measure_costs``): a replayed call set takes 1-10
# ms, so ~150 shapes x 4 runs fit well within it; shapes left over get costs from the fitted line.
COST_TIME_BUDGET_S = 5.0
COST_RUNS = 3  # timed runs per shape, after one untimed; the median counts


def forward(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Float32 logits; ``mask`` is what the runner built for this model (4D boolean for SDPA)."""
    logits: torch.Tensor = model(input_ids=ids, attention_mask=mask).logits
    return logits.float()


@dataclass
class CapturedForward:
    """One model's forward at one shape: static inputs, static output, and how to replay it."""

    ids: torch.Tensor  # (B, L) int64
    mask: torch.Tensor  # (B, 1, 1, L) bool
    logits: torch.Tensor  # (B, num_labels) float32, rewritten by every replay
    replay: Callable[[], None]

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Run on the staged bucket-shaped ``ids`` (B, L) and ``mask`` (B, L); call on the model's
        stream and consume the result there before the next call of any graph of this model."""
        self.ids.copy_(ids, non_blocking=True)
        self.mask.copy_(mask[:, None, None, :], non_blocking=True)
        self.replay()
        return self.logits


Capture = Callable[[torch.nn.Module, Shape, Any, Any], CapturedForward]


def _static_inputs(shape: Shape, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.zeros(shape, dtype=torch.int64, device=device)
    mask = torch.zeros((shape[0], 1, 1, shape[1]), dtype=torch.bool, device=device)
    mask[..., 0] = True  # the capture's own input: no row fully masked
    return ids, mask


def capture_cuda(
    model: torch.nn.Module, shape: Shape, stream: torch.cuda.Stream, pool: Any
) -> CapturedForward:
    """Capture ``model`` at ``shape`` on ``stream`` into ``pool``. One eager run first, on the
    same stream: it creates the stream's cuBLAS workspace and picks the kernels outside capture."""
    device = next(model.parameters()).device
    with torch.cuda.stream(stream):  # the static inputs are made, and live, on this stream
        ids, mask = _static_inputs(shape, device)
        forward(model, ids, mask)
    stream.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.stream(stream):
        graph.capture_begin(pool=pool, capture_error_mode="thread_local")
        try:
            logits = forward(model, ids, mask)
        finally:
            graph.capture_end()
    return CapturedForward(ids, mask, logits, graph.replay)


def capture_eager(model: torch.nn.Module, shape: Shape, stream: Any, pool: Any) -> CapturedForward:
    """The same static-buffer contract with an eager forward as the "replay": lets the CPU tests
    and gpu_check's CPU smoke run exactly the runner's graph path, without a GPU."""
    device = next(model.parameters()).device
    ids, mask = _static_inputs(shape, device)
    logits = forward(model, ids, mask)

    def replay() -> None:
        logits.copy_(forward(model, ids, mask))

    return CapturedForward(ids, mask, logits, replay)


@dataclass
class CaptureReport:
    """What capture did, for the start-up log."""

    shapes: list[Shape] = field(default_factory=list)  # captured for every model
    skipped: list[Shape] = field(default_factory=list)  # not captured: a budget ran out
    seconds: float = 0.0
    memory_bytes: int = 0
    time_budget_s: float = CAPTURE_TIME_BUDGET_S
    memory_budget_bytes: int = 0
    stopped_by: str = ""  # "", "time" or "memory"

    def public(self) -> dict[str, Any]:
        return {
            "graphs_per_model": len(self.shapes),
            "shapes": [f"{b}x{n}" for b, n in self.shapes],
            "skipped": len(self.skipped),
            "seconds": round(self.seconds, 2),
            "time_budget_s": self.time_budget_s,
            "memory_mib": round(self.memory_bytes / 2**20, 1),
            "memory_budget_mib": round(self.memory_budget_bytes / 2**20, 1),
            "stopped_by": self.stopped_by or None,
        }


def capture_all(
    models: Sequence[torch.nn.Module],
    streams: Sequence[Any],
    shapes: Sequence[Shape],
    capture: Capture,
    time_budget_s: float,
    memory_budget_bytes: int,
) -> tuple[list[dict[Shape, CapturedForward]], CaptureReport]:
    """Each shape for every model, in order, until a budget is spent (checked between shapes, so
    it overshoots by at most one shape's capture). Raises what a capture raises."""
    cuda = torch.cuda.is_available() and capture is capture_cuda
    pools = [torch.cuda.graph_pool_handle() if cuda else None for _ in models]
    graphs: list[dict[Shape, CapturedForward]] = [{} for _ in models]
    report = CaptureReport(time_budget_s=time_budget_s, memory_budget_bytes=memory_budget_bytes)
    start = time.perf_counter()
    reserved = torch.cuda.memory_reserved() if cuda else 0
    with torch.inference_mode():
        for i, shape in enumerate(shapes):
            if time.perf_counter() - start > time_budget_s:
                report.stopped_by = "time"
            elif report.memory_bytes > memory_budget_bytes:
                report.stopped_by = "memory"
            if report.stopped_by:
                report.skipped = list(shapes[i:])
                break
            for m, model in enumerate(models):
                graphs[m][shape] = capture(model, shape, streams[m], pools[m])
            report.shapes.append(shape)
            if cuda:
                report.memory_bytes = torch.cuda.memory_reserved() - reserved
    report.seconds = time.perf_counter() - start
    return graphs, report


def measure_costs(
    models: Sequence[torch.nn.Module],
    graphs: Sequence[dict[Shape, CapturedForward]],
    shapes: Sequence[Shape],
    use: Callable[[int], AbstractContextManager[Any]],
    synchronize: Callable[[], None],
    time_budget_s: float,
) -> list[Sample]:
    """Host wall time of one call set (every model, each on its stream via ``use(m)``, then
    ``synchronize``): eager at the cheapest and the dearest shape, then replay at each shape,
    cheapest first, until ``time_budget_s`` is spent (the first replay always). Inputs are the
    graphs' static buffers."""

    def timed(shape: Shape, run: Callable[[int, CapturedForward], object]) -> float:
        times = []
        for i in range(COST_RUNS + 1):
            start = time.perf_counter()
            for m in range(len(models)):
                with use(m):
                    run(m, graphs[m][shape])
            synchronize()
            if i:
                times.append(time.perf_counter() - start)
        return statistics.median(times)

    samples: list[Sample] = []
    start = time.perf_counter()
    with torch.inference_mode():
        for shape in sorted({shapes[0], shapes[-1]}, key=lambda s: s[0] * s[1]):
            seconds = timed(shape, lambda m, g: forward(models[m], g.ids, g.mask))
            samples.append(Sample(shape, seconds, "eager"))
        for i, shape in enumerate(shapes):
            if i and time.perf_counter() - start > time_budget_s:
                break  # checked between shapes: at least one replay is timed
            samples.append(Sample(shape, timed(shape, lambda m, g: g.replay()), "graph"))
    return samples
