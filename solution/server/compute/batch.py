"""One batch through the models: plan its forward calls, run them, and on failure split it in
halves and retry, so that only a text that fails alone gets an error (the engine keeps serving).

A device error that poisons the CUDA context (``runner.is_fatal_device_error``) is never retried:
it propagates, and the engine's supervisor stops the service. An out-of-memory error frees the
allocator's cache first: the halves may fit.
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
from solution.server.compute.runner import Runner, is_fatal_device_error
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
class BatchComputer:
    """Computes batches of deduplicated rows: ``ids[family][row]`` (``[]`` where no model of the
    family is wanted) and ``wanted[row]``, the model indices the row needs (None: all)."""

    runner: Runner
    families: Sequence[Family]
    micro_batch_tokens: int  # padded tokens per forward call
    max_texts: int  # rows per forward call

    def compute(
        self, ids: Sequence[Sequence[Sequence[int]]], wanted: Sequence[frozenset[int] | None]
    ) -> Computed:
        n_models = len(self.runner.models)
        logits = np.zeros((n_models, len(wanted), self.runner.max_labels), dtype=np.float32)
        out = Computed(logits, gpu_seconds=[0.0] * n_models)
        self._rows(ids, wanted, list(range(len(wanted))), out)
        return out

    def _rows(
        self,
        ids: Sequence[Sequence[Sequence[int]]],
        wanted: Sequence[frozenset[int] | None],
        rows: list[int],
        out: Computed,
    ) -> None:
        try:
            plan = planning.plan(
                ids,
                self.families,
                rows,
                self.micro_batch_tokens,
                self.max_texts,
                wanted,
                self.runner.buckets,
            )
            run = self.runner.run(plan.work, len(rows))
        except Exception as exc:
            if is_fatal_device_error(exc):
                raise
            if isinstance(exc, torch.cuda.OutOfMemoryError):
                torch.cuda.empty_cache()
            if len(rows) == 1:
                log.error("model failure on one text", extra={"error": repr(exc)})
                out.failed[rows[0]] = ModelFailure(f"a model failed on this text: {exc}")
                return
            half = len(rows) // 2
            self._rows(ids, wanted, rows[:half], out)
            self._rows(ids, wanted, rows[half:], out)
            return
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
