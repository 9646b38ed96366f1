"""The compute thread's batches in hand: one at a time on the CPU, two overlapped on CUDA.

On CUDA a batch's launch only enqueues work and the host then waits for its logits, so the
compute thread spends that wait on the next batch: after launching batch A it plans and stages
batch B (when the scheduler has one ready now: it never waits for one with A in flight), collects
A, launches B at once, and only then shapes A's answers. The GPU goes from A to B with no host
work between them but B's launch. On the CPU ``launch`` computes the whole batch, so cutting B
early would only make it smaller: each batch runs in a row (``batches.run_batch``), the same calls
as before the pipeline existed.

Plain state driven by the engine's loop (``start``, ``stage``, ``finish``); no lock, no scheduler:
the engine cuts the batches and settles them in the scheduler. A failed batch keeps its
semantics (``BatchComputer.finish``: split and retry, a fatal device error raises); a staged batch
is staged again if a retry's runs came after it (``BatchComputer.launch``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from solution.server.compute.batch import BatchComputer, Pending
from solution.server.compute.scoring import Scorable
from solution.server.engine.batches import BatchReport, answer, run_batch
from solution.server.engine.entries import Batch, Outcome


@dataclass
class _InHand:
    batch: Batch
    started: float  # perf_counter when its compute began (the report's wall_s counts from here)
    pending: Pending | None = None  # None on the CPU: the batch runs whole in ``finish``


class Pipeline:
    """Batches the compute thread holds: at most one launched and (``ahead``: on CUDA) one staged
    behind it. ``finish`` returns each batch's answers in the order the batches were started."""

    def __init__(self, computer: BatchComputer, models: Sequence[Scorable], ahead: bool):
        self.computer = computer
        self.models = models
        self.ahead = ahead
        self._running: _InHand | None = None  # launched (on the CPU: started), not yet finished
        self._staged: _InHand | None = None  # prepared, launched when the running one finishes

    @property
    def busy(self) -> bool:
        """A batch is in hand: ``finish`` it before taking another with ``start`` (or stopping)."""
        return self._running is not None

    @property
    def wants_next(self) -> bool:
        """A batch is launched on CUDA and none is staged: the next one may be staged now."""
        return self.ahead and self._running is not None and self._staged is None

    def start(self, batch: Batch) -> None:
        """Take ``batch`` when nothing is in hand; on CUDA plan, stage and launch it now."""
        assert self._running is None, "a batch is already in hand"
        running = _InHand(batch, time.perf_counter())
        if self.ahead:
            computer = self.computer
            running.pending = computer.launch(computer.prepare(batch.ids, batch.wanted))
        self._running = running

    def stage(self, batch: Batch) -> None:
        """Plan and stage the next batch while the running one computes (``wants_next``)."""
        assert self.wants_next, "stage only behind a launched batch, one at a time"
        started = time.perf_counter()
        self._staged = _InHand(batch, started, self.computer.prepare(batch.ids, batch.wanted))

    def finish(self) -> tuple[Batch, list[Outcome], BatchReport]:
        """Collect the running batch (on the CPU: compute it), launch the staged one if any, then
        answer the collected one. Raises what a batch raises that must stop the service."""
        done = self._running
        assert done is not None, "nothing in hand"
        self._running = None
        if done.pending is None:
            return (done.batch, *run_batch(self.computer, self.models, done.batch))
        computed = self.computer.finish(done.pending)
        staged, self._staged = self._staged, None
        if staged is not None:  # the GPU's next work, before any host work on the answers
            assert staged.pending is not None
            self.computer.launch(staged.pending)
            self._running = staged
        return (done.batch, *answer(self.models, done.batch, computed, done.started))
