"""Run the models on one prepared batch and return every model's logits for every text.

On CUDA every model has its own stream: a batch's inputs go to the device in one copy from a
reused pinned buffer on a copy stream (``stage``, which may run while the GPU computes the last
batch), the launches for all models are issued back to back before any synchronisation (so small
batches overlap on the GPU), calls the planner cut to a captured bucket replay its CUDA graph
(``graphs.py``, ``planning.py``), and the batch's logits come back in its one device-to-host
copy, the only point where the host waits (``collect``). Softmax and top-1 are the caller's, on
the host. On the CPU the same code runs the models in turn, each forward using all intra-op
threads (``streams.Sequential``).

The attention mask goes in as a 4D boolean ``(B, 1, 1, L)``: transformers returns such a mask
unchanged (``masking_utils._preprocess_mask_arguments``), where a 2D one costs a host sync per
forward (``_ignore_bidirectional_mask_sdpa`` evaluates ``padding_mask.all()``) and cannot be
captured in a graph.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from solution.server.compute.buckets import BucketGrid, Shape
from solution.server.compute.costs import CostTable, default_table, from_samples
from solution.server.compute.graphs import (
    CAPTURE_MEMORY_BYTES,
    CAPTURE_MEMORY_FRACTION,
    CAPTURE_TIME_BUDGET_S,
    COST_TIME_BUDGET_S,
    Capture,
    CapturedForward,
    capture_all,
    capture_cuda,
    forward,
    measure_costs,
)
from solution.server.compute.models import LoadedModel
from solution.server.compute.planning import Buckets, FamilyWork
from solution.server.compute.streams import CudaStreams, Sequential, Timer, Upload

log = logging.getLogger(__name__)

GRAPH_MODES = ("auto", "on", "off")


class HeapTrimmer:
    """Give freed heap memory back to the OS (glibc ``malloc_trim``).

    Every batch has its own (texts x tokens) shape, so CPU tensors of ever-different sizes come
    and go; glibc keeps the freed pieces, and a server's RSS grows without bound (measured here:
    +280 MiB over 2,400 random shapes, +35 MiB with a trim after each 300). Trimming costs a few
    milliseconds, so it runs when the compute thread goes idle (at most once a second), and under
    sustained load every 10 s (well under 0.1% of the time). A no-op where glibc is absent.
    """

    IDLE_INTERVAL_S = 1.0
    BUSY_INTERVAL_S = 10.0

    def __init__(self) -> None:
        self.last = 0.0
        name = ctypes.util.find_library("c")
        libc = ctypes.CDLL(name) if name else None
        self._trim = getattr(libc, "malloc_trim", None)

    def maybe_trim(self, idle: bool) -> None:
        now = time.monotonic()
        interval = self.IDLE_INTERVAL_S if idle else self.BUSY_INTERVAL_S
        if self._trim is not None and now - self.last >= interval:
            self.last = now
            self._trim(0)


# Errors after which the CUDA context is unusable: every later call on it fails too, so retrying
# (or splitting the batch) only repeats the failure. Messages as the CUDA runtime words them.
_STICKY_ERRORS = (
    "device-side assert",
    "illegal memory access",
    "illegal instruction",
    "misaligned address",
    "unspecified launch failure",
    "launch timed out",
    "uncorrectable ecc error",
    "hardware stack error",
    "cublas_status_execution_failed",
)


def is_fatal_device_error(exc: BaseException) -> bool:
    """True when ``exc`` means the process's CUDA context is lost (device-side assert, illegal
    memory access, ...): only a restart helps. An out-of-memory error is not: freeing memory and
    retrying smaller works. ``torch.AcceleratorError`` (torch 2.8+) is how CUDA runtime errors reach
    Python; causes and contexts are looked through, as a caller may have wrapped the error."""
    if isinstance(exc, torch.OutOfMemoryError):
        return False
    accelerator_error = getattr(torch, "AcceleratorError", ())
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current).lower()
        if isinstance(current, accelerator_error) and "out of memory" not in text:
            return True
        if isinstance(current, RuntimeError) and any(s in text for s in _STICKY_ERRORS):
            return True
        current = current.__cause__ or current.__context__
    return False


@dataclass
class RunOutput:
    """One batch's results."""

    logits: np.ndarray  # (models, rows, max_labels) float32; 0 past a model's labels, 0 if not run
    # per model: its stream's span in the batch on cuda (they overlap: may sum past wall_s); its
    # forwards' host time on the CPU
    gpu_seconds: list[float]
    wall_s: float  # host clock from the launch's start to the results on the host
    num_labels: tuple[int, ...] = ()  # per model: how many columns of ``logits`` are real
    enqueue_s: float = 0.0  # host time until every launch was issued (launch-bound if ~wall_s)
    stage_s: float = 0.0  # host time staging took (before the launch; may overlap the last batch)
    graph_calls: int = 0  # model forward calls replayed from a CUDA graph
    eager_calls: int = 0  # model forward calls run eager
    # The batch's GPU span on cuda: from an event on the main stream before the first launch to
    # one after every model stream's last kernel (the streams overlap inside it). On the CPU the
    # host time of the forwards.
    gpu_busy_s: float = 0.0


@dataclass
class Staged:
    """A batch ready to launch: every call's inputs on the device (or on their way there, on the
    copy stream), and per model the rows its results come back for, in launch order."""

    work: list[FamilyWork]
    n_rows: int
    upload: Upload
    slots: list[np.ndarray]  # per model: runner rows of its result slots 0, 1, ...
    stage_s: float


@dataclass
class Launched:
    """A batch whose launches are all issued; ``Runner.collect`` waits for its results."""

    staged: Staged
    out: torch.Tensor  # (models, slots, max_labels) float32 on the device
    timers: list[Timer]
    busy: Timer
    started: float  # perf_counter at the launch's start
    enqueue_s: float
    graph_calls: int
    eager_calls: int


def uses_sdpa(model: torch.nn.Module) -> bool:
    """A boolean 4D mask is right only for SDPA; eager attention would add it to the scores."""
    return getattr(getattr(model, "config", None), "_attn_implementation", None) == "sdpa"


class Runner:
    """One batch is ``stage`` (host: pack the planned calls into a reused pinned buffer, upload
    it on the copy stream), ``launch`` (enqueue every model's calls on its stream, from graphs
    where planned) and ``collect`` (the batch's one wait, for its logits). ``run`` is the three in
    a row. ``stage`` of the next batch may run between ``launch`` and ``collect`` of this one,
    on this thread or another (but one ``stage`` at a time), so the GPU never waits on it."""

    def __init__(
        self, models: Sequence[LoadedModel], device: torch.device, ops: Sequential | None = None
    ):
        self.models = list(models)
        self.device = device
        self.ops = ops if ops is not None else _default_ops(device)
        self.streams: list[Any] = [self.ops.new_stream() for _ in self.models]
        configs: list[Any] = [m.model.config for m in self.models]
        self.num_labels = tuple(int(c.num_labels) for c in configs)
        self.max_labels = max(self.num_labels)
        self.boolean_mask = [uses_sdpa(m.model) for m in self.models]
        self.grid = BucketGrid()
        self.graphs: list[dict[Shape, CapturedForward]] = [{} for _ in self.models]
        # what the planner may cut calls to (captured for every model) and what they cost
        self.buckets = Buckets()

    @property
    def shapes(self) -> list[Shape]:
        """The shapes captured for every model, cheapest first."""
        return list(self.buckets.shapes)

    # ---- start-up -------------------------------------------------------------------------------

    def prepare(
        self,
        mode: str,
        *,
        max_rows: int,
        max_length: int,
        max_tokens: int | None = None,
        grid: BucketGrid | None = None,
        time_budget_s: float = CAPTURE_TIME_BUDGET_S,
        memory_fraction: float = CAPTURE_MEMORY_FRACTION,
        capture: Capture | None = None,
        measure: bool | None = None,
    ) -> dict[str, Any]:
        """Capture the CUDA graphs (``CLS_CUDA_GRAPHS``: auto, on, off) for calls of up to
        ``max_rows x max_length`` (and ``max_tokens``), then time replay and eager on the device
        for the cost table the planner cuts calls by; returns what to log. ``auto`` runs eager
        where graphs cannot be had (no CUDA device, a model without SDPA, a failed capture);
        ``on`` raises instead. ``capture`` replaces the CUDA capture (``graphs.capture_eager``
        runs the graph path on the CPU); ``measure`` (default: on CUDA only, where timing means
        something) times the captured shapes, else the cost table is ``costs.default_table``."""
        if mode not in GRAPH_MODES:
            raise ValueError(f"CLS_CUDA_GRAPHS={mode!r}: use auto, on or off")
        self.grid = grid or self.grid
        self.graphs, self.buckets = [{} for _ in self.models], Buckets()
        if mode == "off":
            return {"mode": mode, "graphs_per_model": 0}
        cuda = capture is None
        reason = ""
        if cuda and self.device.type != "cuda":
            reason = "no CUDA device"
        elif not all(self.boolean_mask):
            reason = "not every model uses SDPA attention"
        if reason:
            if mode == "on":
                raise ValueError(f"CLS_CUDA_GRAPHS=on, but {reason}: use auto or off")
            return {"mode": mode, "graphs_per_model": 0, "reason": reason}
        budget = 0
        if cuda:
            free = torch.cuda.mem_get_info(self.device)[0]
            budget = min(int(memory_fraction * free), CAPTURE_MEMORY_BYTES)
        try:
            graphs, report = capture_all(
                [m.model for m in self.models],
                self.streams,
                self.grid.shapes(max_rows, max_length, max_tokens),
                capture or capture_cuda,
                time_budget_s,
                budget,
            )
        except Exception as exc:
            if mode == "on" or is_fatal_device_error(exc):
                raise
            log.warning("cuda graph capture failed; running eager", extra={"error": repr(exc)})
            return {"mode": mode, "graphs_per_model": 0, "reason": f"capture failed: {exc!r}"}
        self.graphs = graphs
        table, timing = self._costs(report.shapes, cuda if measure is None else measure)
        self.buckets = Buckets(tuple(report.shapes), table)
        return {"mode": mode, **report.public(), "costs": {**table.summary(), **timing}}

    def _costs(self, shapes: list[Shape], measure: bool) -> tuple[CostTable, dict[str, Any]]:
        """The cost table for ``shapes``: measured on the device, or the default one."""
        if not measure or not shapes:
            return default_table(shapes), {}
        start = time.perf_counter()
        try:
            samples = measure_costs(
                [m.model for m in self.models],
                self.graphs,
                shapes,
                lambda m: self.ops.use(self.streams[m]),
                self.ops.synchronize,
                COST_TIME_BUDGET_S,
            )
            table = from_samples(shapes, samples)
        except Exception as exc:
            if is_fatal_device_error(exc):
                raise
            log.warning("timing the graphs failed; default costs", extra={"error": repr(exc)})
            return default_table(shapes), {"measure_failed": repr(exc)}
        replays = sum(s.path == "graph" for s in samples)
        return table, {"timed_shapes": replays, "seconds": round(time.perf_counter() - start, 2)}

    # ---- one batch ----------------------------------------------------------------------------

    def run(self, work: Sequence[FamilyWork], n_rows: int) -> RunOutput:
        """Stage, launch and collect one batch (``planning.plan``'s work for ``n_rows`` rows)."""
        return self.collect(self.launch(self.stage(work, n_rows)))

    def stage(self, work: Sequence[FamilyWork], n_rows: int) -> Staged:
        """Every call's ids and boolean mask, packed into one reused pinned buffer and uploaded
        in one copy; the runner rows each model's results will come back for."""
        start = time.perf_counter()
        arrays: list[np.ndarray] = []
        per_model: list[list[np.ndarray]] = [[] for _ in self.models]
        for family in work:
            for call in family.calls:
                arrays += [call.input_ids, call.attention_mask]
                for m in family.members:
                    per_model[m].append(call.rows)
        upload = self.ops.upload(arrays)
        slots = [np.concatenate(rows) if rows else _NO_ROWS for rows in per_model]
        return Staged(list(work), n_rows, upload, slots, time.perf_counter() - start)

    def launch(self, staged: Staged) -> Launched:
        """Enqueue every call of ``staged`` on its models' streams; returns once all are issued.
        Model ``m``'s results fill its result slots in launch order (no index tensors)."""
        start = time.perf_counter()
        ops, streams = self.ops, self.streams
        timers = [ops.timer(s) for s in streams]
        tensors = iter(staged.upload.tensors)
        filled = [0] * len(self.models)
        graph_calls = eager_calls = 0
        with torch.inference_mode():
            main = ops.current()
            busy = ops.timer(main)
            width = max(1, *(len(s) for s in staged.slots))
            shape = (len(self.models), width, self.max_labels)
            out = torch.empty(shape, dtype=torch.float32, device=self.device)
            with busy:
                try:
                    for stream in streams:
                        ops.wait(stream, main)  # `out` was made on main
                        ops.wait(stream, staged.upload.ready)  # the inputs' copy
                        ops.keep(staged.upload.buffer, stream)
                    for family in staged.work:
                        for call in family.calls:
                            ids, mask = next(tensors), next(tensors)
                            k = call.real_rows
                            for m in family.members:
                                with ops.use(streams[m]), timers[m]:
                                    logits, replayed = self._forward(m, ids, mask, call.bucket)
                                    slots = out[m, filled[m] : filled[m] + k, : self.num_labels[m]]
                                    slots.copy_(logits[:k])
                                filled[m] += k
                                graph_calls += replayed
                                eager_calls += not replayed
                finally:
                    # Also when a model raised: work already queued on the other streams still
                    # writes into `out` and reads the inputs; main waits for it before anything
                    # of this batch is freed, so a retry's allocations cannot receive memory
                    # still being written.
                    for stream in streams:
                        ops.wait(main, stream)
        enqueue_s = time.perf_counter() - start
        return Launched(staged, out, timers, busy, start, enqueue_s, graph_calls, eager_calls)

    def collect(self, launched: Launched) -> RunOutput:
        """Wait for ``launched``'s logits (the batch's one device-to-host copy) and put each
        model's slots back on their rows."""
        staged = launched.staged
        with torch.inference_mode():
            host = self.ops.download(launched.out)
        logits = np.zeros((len(self.models), staged.n_rows, self.max_labels), dtype=np.float32)
        for m, rows in enumerate(staged.slots):
            n = self.num_labels[m]
            logits[m, rows, :n] = host[m, : len(rows), :n]
        return RunOutput(
            logits,
            [t.seconds() for t in launched.timers],
            time.perf_counter() - launched.started,
            self.num_labels,
            launched.enqueue_s,
            staged.stage_s,
            launched.graph_calls,
            launched.eager_calls,
            launched.busy.seconds(),
        )

    def _forward(
        self, m: int, ids: torch.Tensor, mask: torch.Tensor, bucket: Shape | None
    ) -> tuple[torch.Tensor, bool]:
        """Model ``m``'s logits for one call, and whether a graph replayed them (a bucket
        without a graph here, as a plan made for other shapes has, runs eager: still right)."""
        graph = self.graphs[m].get(bucket) if bucket is not None else None
        if graph is not None:
            return graph(ids, mask), True
        mask = mask[:, None, None, :] if self.boolean_mask[m] else mask
        return forward(self.models[m].model, ids, mask), False


_NO_ROWS = np.zeros(0, dtype=np.int64)


def _default_ops(device: torch.device) -> Sequential:
    return CudaStreams(device) if device.type == "cuda" else Sequential()
