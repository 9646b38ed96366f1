"""One batch through the models: plan its forward calls, run them, and on failure split it in
halves and retry, so that only a text that fails alone gets an error (the engine keeps serving).

A device error that poisons the CUDA context (``runner.is_fatal_device_error``) is never retried:
it propagates, and the engine's supervisor stops the service. An out-of-memory error frees the
allocator's cache first: the halves may fit.

``compute`` is one batch in a row (``Runner.run``: what the CPU does). On CUDA the engine keeps
the GPU fed by taking the steps apart (``engine/pipeline.py``): ``prepare`` plans and stages the
next batch while the last one computes, ``launch`` issues it, ``finish`` collects it. An error in
any step is kept on the ``Pending`` batch and ``finish`` splits and retries as ``compute`` does.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from solution.server.compute import planning
from solution.server.compute.families import Family
from solution.server.compute.runner import (
    Launched,
    Runner,
    RunOutput,
    Staged,
    is_fatal_device_error,
)
from solution.server.errors import ModelFailure

log = logging.getLogger(__name__)


@dataclass
class Computed:
    """What computing some rows of a batch gave, and what it cost."""

    logits: np.ndarray  # (models, rows of the batch, max labels); zeros where not computed
    failed: dict[int, ModelFailure] = field(default_factory=dict)  # row -> why it has no logits
    gpu_seconds: list[float] = field(default_factory=list)  # per model
    forward_calls: int = 0
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)  # family: (real, computed)
    calls_by_path: Counter[str] = field(default_factory=Counter)  # model calls: graph, eager
    gpu_busy_s: float = 0.0  # the runner's GPU span, summed over the runs

    def add(self, other: Computed) -> None:
        """Fold in the result of other rows of the same batch (``other.logits`` is unused)."""
        self.failed.update(other.failed)
        self.gpu_seconds = [a + b for a, b in zip(self.gpu_seconds, other.gpu_seconds, strict=True)]
        self.forward_calls += other.forward_calls
        self.calls_by_path += other.calls_by_path
        self.gpu_busy_s += other.gpu_busy_s
        for name, (real, computed) in other.positions.items():
            r, c = self.positions.get(name, (0, 0))
            self.positions[name] = (r + real, c + computed)


@dataclass
class Pending:
    """A batch between ``prepare`` and ``finish``: planned, staged, then launched; or the first
    error a step raised, which ``finish`` treats as a failed run (split and retry)."""

    ids: Sequence[Sequence[Sequence[int]]]
    wanted: Sequence[frozenset[int] | None]
    plan: planning.Plan | None = None
    staged: Staged | None = None
    launched: Launched | None = None
    error: Exception | None = None
    # Which staging its inputs came from: the runner stages into reused buffers, so a batch
    # staged before a retry's runs is staged again at its launch (``BatchComputer.launch``).
    stage_no: int = 0


@dataclass
class BatchComputer:
    """Computes batches of deduplicated rows: ``ids[family][row]`` (``[]`` where no model of the
    family is wanted) and ``wanted[row]``, the model indices the row needs (None: all)."""

    runner: Runner
    families: Sequence[Family]
    micro_batch_tokens: int  # padded tokens per forward call
    max_texts: int  # rows per forward call

    # stagings so far (``prepare``'s and every run's), to tell a ``Pending`` staged before others
    _stages: int = field(default=0, init=False, repr=False)

    def compute(
        self, ids: Sequence[Sequence[Sequence[int]]], wanted: Sequence[frozenset[int] | None]
    ) -> Computed:
        """One batch in a row (plan, ``Runner.run``, split and retry): the CPU's way."""
        out = self._empty(len(wanted))
        self._rows(ids, wanted, list(range(len(wanted))), out)
        return out

    # ---- one batch in steps: the GPU pipeline's way ----------------------------------------------

    def prepare(
        self, ids: Sequence[Sequence[Sequence[int]]], wanted: Sequence[frozenset[int] | None]
    ) -> Pending:
        """Plan the batch and stage its inputs (host work that may overlap the last batch's GPU
        time). Never raises: an error waits in the ``Pending`` for ``finish``."""
        pending = Pending(ids, wanted)
        try:
            pending.plan = self._plan(ids, wanted, list(range(len(wanted))))
            self._stage(pending)
        except Exception as exc:
            pending.error = exc
        return pending

    def launch(self, pending: Pending) -> Pending:
        """Issue the batch's calls (staged again first if anything was staged after it: the
        runner's buffers go round, and a retry's runs may have reused its). Never raises."""
        if pending.error is None:
            try:
                if pending.stage_no != self._stages:
                    self._stage(pending)
                assert pending.staged is not None
                pending.launched = self.runner.launch(pending.staged)
            except Exception as exc:
                pending.error = exc
        return pending

    def finish(self, pending: Pending) -> Computed:
        """Collect the batch's logits (launching it first if it is only prepared); after any
        failure, split and retry as ``compute`` does (only a text that fails alone fails; a fatal
        device error raises)."""
        if pending.error is None and pending.launched is None:
            self.launch(pending)  # prepared only: launch it now
        rows = list(range(len(pending.wanted)))
        out = self._empty(len(rows))
        error = pending.error
        if error is None:
            assert pending.launched is not None and pending.plan is not None
            try:
                self._record(out, rows, pending.plan, self.runner.collect(pending.launched))
                return out
            except Exception as exc:
                error = exc
        self._failed(pending.ids, pending.wanted, rows, out, error)
        return out

    def _stage(self, pending: Pending) -> None:
        assert pending.plan is not None
        self._stages += 1
        pending.stage_no = self._stages
        pending.staged = self.runner.stage(pending.plan.work, len(pending.wanted))

    # ---- shared ---------------------------------------------------------------------------------

    def _empty(self, n_rows: int) -> Computed:
        n_models = len(self.runner.models)
        logits = np.zeros((n_models, n_rows, self.runner.max_labels), dtype=np.float32)
        return Computed(logits, gpu_seconds=[0.0] * n_models)

    def _plan(
        self,
        ids: Sequence[Sequence[Sequence[int]]],
        wanted: Sequence[frozenset[int] | None],
        rows: list[int],
    ) -> planning.Plan:
        return planning.plan(
            ids,
            self.families,
            rows,
            self.micro_batch_tokens,
            self.max_texts,
            wanted,
            self.runner.buckets,
        )

    def _rows(
        self,
        ids: Sequence[Sequence[Sequence[int]]],
        wanted: Sequence[frozenset[int] | None],
        rows: list[int],
        out: Computed,
    ) -> None:
        try:
            plan = self._plan(ids, wanted, rows)
            self._stages += 1  # run stages too
            run = self.runner.run(plan.work, len(rows))
        except Exception as exc:
            self._failed(ids, wanted, rows, out, exc)
            return
        self._record(out, rows, plan, run)

    def _failed(
        self,
        ids: Sequence[Sequence[Sequence[int]]],
        wanted: Sequence[frozenset[int] | None],
        rows: list[int],
        out: Computed,
        exc: Exception,
    ) -> None:
        """``rows`` failed together: raise a fatal device error, else fail a lone text or retry
        the rows in halves (after freeing the allocator's cache on out-of-memory)."""
        if is_fatal_device_error(exc):
            raise exc
        if isinstance(exc, torch.cuda.OutOfMemoryError):
            torch.cuda.empty_cache()
        if len(rows) == 1:
            log.error("model failure on one text", extra={"error": repr(exc)})
            out.failed[rows[0]] = ModelFailure(f"a model failed on this text: {exc}")
            return
        half = len(rows) // 2
        self._rows(ids, wanted, rows[:half], out)
        self._rows(ids, wanted, rows[half:], out)

    @staticmethod
    def _record(out: Computed, rows: list[int], plan: planning.Plan, run: RunOutput) -> None:
        out.logits[:, rows] = run.logits
        paths = Counter(graph=run.graph_calls, eager=run.eager_calls)
        out.add(
            Computed(
                run.logits,
                {},
                run.gpu_seconds,
                plan.calls,
                plan.positions,
                paths,
                run.gpu_busy_s,
            )
        )
