"""The stream API the runner uses, behind one small interface so that its ordering can be tested
on the CPU: ``CudaStreams`` (a CUDA stream per model, events, a pinned staging buffer) and
``Sequential`` (the CPU: one thread, nothing to order). A test subclasses ``Sequential`` to record
every ordering call the runner makes.

What it must guarantee on CUDA (PyTorch's stream semantics):
- a tensor made on one stream and used on another: the user waits on the producer, and the
  tensor is ``record_stream``-ed so the caching allocator does not hand its memory out early;
- the host writes a reused buffer only after the copy that last read it has finished (an event);
  the inputs go up on a copy stream from one of two pinned buffers, so staging the next batch
  neither waits for nor delays the one computing, and each model stream waits on the copy's event;
- the batch's only synchronisation is the one device-to-host copy of its results, which waits on
  an event: ``Event.synchronize`` is not a sync that ``torch.cuda.set_sync_debug_mode`` reports,
  so a batch runs clean under ``set_sync_debug_mode("error")``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

ALIGN = 8  # bytes: every staged array starts where an int64 view of the buffer may begin


class Timer:
    """Time accumulated by one model over a batch: wall time here; GPU time on CUDA."""

    def __init__(self) -> None:
        self.total = 0.0
        self._start = 0.0

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.total += time.perf_counter() - self._start

    def seconds(self) -> float:
        """Read after the batch's synchronisation."""
        return self.total


@dataclass
class Upload:
    """A batch's inputs on the device: ``tensors`` are views of one ``buffer`` (kept alive for
    every stream that reads them); a stream waits on ``ready`` before reading them."""

    tensors: list[torch.Tensor]
    buffer: torch.Tensor
    ready: Any  # an event on CUDA, None where there is nothing to wait for


class Sequential:
    """No streams: the models run in turn on the calling thread (the CPU)."""

    def new_stream(self) -> Any:
        return None

    def current(self) -> Any:
        return None

    def wait(self, waiter: Any, producer: Any) -> None:
        """Work queued on ``waiter`` from now on runs after what is queued on ``producer`` (a
        stream), or after ``producer`` (an upload's ``ready``) has happened."""

    def use(self, stream: Any) -> AbstractContextManager[None]:
        return contextlib.nullcontext()

    def keep(self, tensor: torch.Tensor, stream: Any) -> None:
        """``tensor`` is used on ``stream``: its memory is not reused before that use is done."""

    def timer(self, stream: Any) -> Timer:
        return Timer()

    def synchronize(self) -> None:
        """Wait until every stream is idle (start-up timing only; never in a batch)."""

    def upload(self, arrays: Sequence[np.ndarray]) -> Upload:
        """The arrays as tensors on the device, packed into one buffer (here the host's: the same
        layout as CUDA's, one allocation per batch)."""
        offsets, total = layout(arrays)
        buffer = torch.empty(max(total, ALIGN), dtype=torch.uint8)
        pack(arrays, offsets, buffer)
        return Upload(unpack(buffer, arrays, offsets), buffer, None)

    def download(self, tensor: torch.Tensor) -> np.ndarray:
        """The batch's one device-to-host copy; returns only when the data is on the host."""
        return tensor.numpy().copy()


class _EventTimer(Timer):
    """GPU time of one stream over a batch: from an event before its first timed call to one
    after its last (the end event is re-recorded after each call: two events per batch, not two
    per call, which host time under many small calls would feel). Streams overlap, so per-model
    GPU times may add up to more than the batch took."""

    def __init__(self, stream: torch.cuda.Stream):
        super().__init__()
        self.stream = stream
        self._begin: torch.cuda.Event | None = None
        self._end = torch.cuda.Event(enable_timing=True)

    def __enter__(self) -> None:
        if self._begin is None:
            self._begin = torch.cuda.Event(enable_timing=True)
            self._begin.record(self.stream)

    def __exit__(self, *exc: object) -> None:
        self._end.record(self.stream)

    def seconds(self) -> float:
        if self._begin is None:
            return 0.0
        return self._begin.elapsed_time(self._end) / 1000.0


class _Pinned:
    """A page-locked host buffer reused batch after batch, guarded by an event: the host writes
    it only after the copy that last used it has finished (after a batch that raised, that copy
    may still be running). It only grows, to the largest batch seen."""

    def __init__(self) -> None:
        self.buffer = torch.empty(0, dtype=torch.uint8)
        self.event: torch.cuda.Event | None = None

    def take(self, nbytes: int) -> torch.Tensor:
        if self.event is not None:
            self.event.synchronize()  # normally long done: the last batch waited on its results
        if self.buffer.numel() < nbytes:
            size = max(nbytes, 2 * self.buffer.numel(), 1 << 16)
            self.buffer = torch.empty(size, dtype=torch.uint8, pin_memory=True)
        return self.buffer[:nbytes]

    def used_by(self, stream: torch.cuda.Stream) -> None:
        self.event = torch.cuda.Event()
        self.event.record(stream)


class CudaStreams(Sequential):
    """CUDA: one stream per model (``per_model=False``: every model on the current stream, the
    gpu_check's one-stream baseline), inputs staged through two pinned buffers in turn and
    uploaded on a copy stream."""

    def __init__(self, device: torch.device, per_model: bool = True):
        self.device = device
        self.per_model = per_model
        self.copy = torch.cuda.Stream(device)
        self._inputs = (_Pinned(), _Pinned())
        self._turn = 0
        self._outputs = _Pinned()

    def new_stream(self) -> torch.cuda.Stream:
        return torch.cuda.Stream(self.device) if self.per_model else self.current()

    def current(self) -> torch.cuda.Stream:
        return torch.cuda.current_stream(self.device)

    def wait(self, waiter: Any, producer: Any) -> None:
        if isinstance(producer, torch.cuda.Event):
            waiter.wait_event(producer)
        elif producer is not None and waiter != producer:
            waiter.wait_stream(producer)

    def synchronize(self) -> None:
        torch.cuda.synchronize(self.device)

    def use(self, stream: Any) -> AbstractContextManager[None]:
        return torch.cuda.stream(stream)

    def keep(self, tensor: torch.Tensor, stream: Any) -> None:
        tensor.record_stream(stream)

    def timer(self, stream: Any) -> Timer:
        return _EventTimer(stream)

    def upload(self, arrays: Sequence[np.ndarray]) -> Upload:
        """Every array into a pinned buffer, one asynchronous copy on the copy stream
        (``torch.tensor(list, device=cuda)`` would be a blocking copy per tensor). The device
        buffer is allocated on the copy stream; each reader ``keep``s it."""
        offsets, total = layout(arrays)
        pinned = self._inputs[self._turn]
        self._turn ^= 1
        host = pinned.take(max(total, ALIGN))
        pack(arrays, offsets, host)
        with torch.cuda.stream(self.copy):
            device = host.to(self.device, non_blocking=True)
        pinned.used_by(self.copy)
        assert pinned.event is not None
        return Upload(unpack(device, arrays, offsets), device, pinned.event)

    def download(self, tensor: torch.Tensor) -> np.ndarray:
        flat = tensor.reshape(-1)
        nbytes = flat.numel() * flat.element_size()
        host = self._outputs.take(nbytes).view(tensor.dtype)
        host.copy_(flat, non_blocking=True)
        self._outputs.used_by(self.current())
        assert self._outputs.event is not None
        self._outputs.event.synchronize()  # the batch's one wait for the device
        return host.numpy().reshape(tuple(tensor.shape)).copy()


def layout(arrays: Sequence[np.ndarray]) -> tuple[list[int], int]:
    """Byte offsets of ``arrays`` packed one after another, each aligned; the total size."""
    offsets, total = [], 0
    for a in arrays:
        offsets.append(total)
        total += -(-a.nbytes // ALIGN) * ALIGN
    return offsets, total


def pack(arrays: Sequence[np.ndarray], offsets: Sequence[int], buffer: torch.Tensor) -> None:
    """Write ``arrays`` into the uint8 ``buffer`` at ``offsets``."""
    flat = buffer.numpy()
    for a, offset in zip(arrays, offsets, strict=True):
        flat[offset : offset + a.nbytes] = np.ascontiguousarray(a).view(np.uint8).reshape(-1)


def unpack(
    buffer: torch.Tensor, arrays: Sequence[np.ndarray], offsets: Sequence[int]
) -> list[torch.Tensor]:
    """Views of the uint8 ``buffer`` (a copy of a packed one) with the shapes and dtypes of
    ``arrays``: no further copy."""
    return [
        buffer[offset : offset + a.nbytes].view(_TORCH_DTYPES[a.dtype]).view(a.shape)
        for a, offset in zip(arrays, offsets, strict=True)
    ]


_TORCH_DTYPES = {
    np.dtype(np.int64): torch.int64,
    np.dtype(np.bool_): torch.bool,
    np.dtype(np.float32): torch.float32,
}
