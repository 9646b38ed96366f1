"""Run the models on one prepared batch and return every model's logits for every text.

On CUDA every model has its own stream: a batch's inputs go to the device in one copy from a
reused pinned buffer, the launches for all models are issued back to back before any
synchronisation (so small batches overlap on the GPU), calls that fit a captured shape replay a
CUDA graph (``graphs.py``, ``buckets.py``), and the batch's logits come back in its one
device-to-host copy, the only point where the host waits. Softmax and top-1 are the caller's, on
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

from solution.server.compute import buckets
from solution.server.compute.buckets import BucketGrid, Shape
from solution.server.compute.graphs import (
    CAPTURE_MEMORY_FRACTION,
    CAPTURE_TIME_BUDGET_S,
    Capture,
    CapturedForward,
    capture_all,
    capture_cuda,
    forward,
)
from solution.server.compute.models import LoadedModel
from solution.server.compute.streams import CudaStreams, Sequential

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
class ForwardCall:
    """One forward call for one family: rows index the batch's unique texts."""

    rows: list[int]
    input_ids: torch.Tensor  # (len(rows), longest) int64, right-padded
    attention_mask: torch.Tensor


@dataclass
class FamilyWork:
    """Calls that ``members`` (model indices sharing this tokenization) all run. A batch may hold
    several for one family, with different member subsets."""

    members: list[int]
    calls: list[ForwardCall]


@dataclass
class RunOutput:
    """One batch's results."""

    logits: np.ndarray  # (models, rows, max_labels) float32; 0 past a model's labels, 0 if not run
    gpu_seconds: list[float]  # per model; GPU time on cuda (streams overlap: may sum past wall_s)
    wall_s: float  # the batch, host clock, from the first enqueue to the results on the host
    num_labels: tuple[int, ...] = ()  # per model: how many columns of ``logits`` are real
    enqueue_s: float = 0.0  # host time until every launch was issued (launch-bound if ~wall_s)


def uses_sdpa(model: torch.nn.Module) -> bool:
    """A boolean 4D mask is right only for SDPA; eager attention would add it to the scores."""
    return getattr(getattr(model, "config", None), "_attn_implementation", None) == "sdpa"


class Runner:
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
        # Values for the bucket's padding; right padding keeps them out of the real rows' results.
        self.pad_ids = [int(getattr(c, "pad_token_id", 0) or 0) for c in configs]
        self.boolean_mask = [uses_sdpa(m.model) for m in self.models]
        self.grid = BucketGrid()
        self.graphs: list[dict[Shape, CapturedForward]] = [{} for _ in self.models]
        self.shapes: list[Shape] = []  # captured for every model
        self.use_graphs = True  # gpu_check compares the two paths on one runner

    # ---- start-up -------------------------------------------------------------------------------

    def prepare(
        self,
        mode: str,
        *,
        max_rows: int,
        max_length: int,
        grid: BucketGrid | None = None,
        time_budget_s: float = CAPTURE_TIME_BUDGET_S,
        memory_fraction: float = CAPTURE_MEMORY_FRACTION,
        capture: Capture | None = None,
    ) -> dict[str, Any]:
        """Capture the CUDA graphs (``CLS_CUDA_GRAPHS``: auto, on, off) for calls of up to
        ``max_rows x max_length``; returns what to log. ``auto`` runs eager where graphs cannot
        be had (no CUDA device, a model without SDPA, a failed capture); ``on`` raises instead.
        ``capture`` replaces the CUDA capture (``graphs.capture_eager`` runs the graph path on
        the CPU)."""
        if mode not in GRAPH_MODES:
            raise ValueError(f"CLS_CUDA_GRAPHS={mode!r}: use auto, on or off")
        self.grid = grid or self.grid
        self.graphs, self.shapes = [{} for _ in self.models], []
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
        budget = int(memory_fraction * torch.cuda.mem_get_info(self.device)[0]) if cuda else 0
        try:
            graphs, report = capture_all(
                [m.model for m in self.models],
                self.streams,
                self.grid.shapes(max_rows, max_length),
                capture or capture_cuda,
                time_budget_s,
                budget,
            )
        except Exception as exc:
            if mode == "on" or is_fatal_device_error(exc):
                raise
            log.warning("cuda graph capture failed; running eager", extra={"error": repr(exc)})
            return {"mode": mode, "graphs_per_model": 0, "reason": f"capture failed: {exc!r}"}
        self.graphs, self.shapes = graphs, report.shapes
        return {"mode": mode, **report.public()}

    # ---- one batch ----------------------------------------------------------------------------

    def run(self, work: Sequence[FamilyWork], n_rows: int) -> RunOutput:
        start = time.perf_counter()
        ops, streams = self.ops, self.streams
        timers = [ops.timer(s) for s in streams]
        with torch.inference_mode():
            main = ops.current()
            shape = (len(self.models), n_rows, self.max_labels)
            out = torch.zeros(shape, dtype=torch.float32, device=self.device)
            try:
                staged = self._stage(work)
                for stream in streams:
                    ops.wait(stream, main)  # the inputs were copied, `out` zeroed, on main
                for family, calls in zip(work, staged, strict=True):
                    for ids, mask, rows, bucket in calls:
                        for m in family.members:
                            with ops.use(streams[m]), timers[m]:
                                for t in (ids, mask, rows):
                                    ops.keep(t, streams[m])
                                logits = self._forward(m, ids, mask, bucket)
                                view = out[m, :, : self.num_labels[m]]
                                view.index_copy_(0, rows, logits[: rows.shape[0]])
            finally:
                # Also when a model raised: work already queued on the other streams still writes
                # into `out` and reads the inputs; main waits for it before anything of this batch
                # is freed, so a retry's allocations cannot receive memory still being written.
                for stream in streams:
                    ops.wait(main, stream)
            enqueue_s = time.perf_counter() - start
            host = ops.download(out)
        seconds = [t.seconds() for t in timers]
        wall_s = time.perf_counter() - start
        return RunOutput(host, seconds, wall_s, self.num_labels, enqueue_s)

    def _stage(
        self, work: Sequence[FamilyWork]
    ) -> list[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, Shape | None]]]:
        """Every call's ids, boolean mask and rows, bucket-padded where a graph will run it,
        uploaded in one copy. Per family, per call: (ids, mask, rows, bucket or None)."""
        arrays: list[np.ndarray] = []
        chosen: list[list[Shape | None]] = []
        for family in work:
            pad_id = self.pad_ids[family.members[0]]
            chosen.append([])
            for call in family.calls:
                ids = np.asarray(call.input_ids, dtype=np.int64)
                mask = np.asarray(call.attention_mask) != 0
                bucket = None
                if self.use_graphs and self.shapes:
                    rows, length = ids.shape
                    bucket = buckets.choose(rows, length, self.shapes, self.grid)
                if bucket is not None:
                    ids, mask = buckets.pad_call(ids, mask, bucket, pad_id)
                arrays += [ids, mask, np.asarray(call.rows, dtype=np.int64)]
                chosen[-1].append(bucket)
        tensors = iter(self.ops.upload(arrays))
        return [[(next(tensors), next(tensors), next(tensors), b) for b in fam] for fam in chosen]

    def _forward(
        self, m: int, ids: torch.Tensor, mask: torch.Tensor, bucket: Shape | None
    ) -> torch.Tensor:
        if bucket is not None:
            return self.graphs[m][bucket](ids, mask)
        mask = mask[:, None, None, :] if self.boolean_mask[m] else mask
        return forward(self.models[m].model, ids, mask)


def _default_ops(device: torch.device) -> Sequential:
    return CudaStreams(device) if device.type == "cuda" else Sequential()
