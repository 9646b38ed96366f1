"""One cut batch computed and answered (the compute thread's work per batch): the rows through
``BatchComputer``, each entry's answer shaped by its request's options, and the ``BatchReport``
that observers (metrics, tests) receive before the answers go out. ``run_batch`` is the CPU's
batch in a row; the GPU pipeline (``pipeline.py``) computes in steps and calls ``answer``."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from solution.server.compute.batch import BatchComputer, Computed
from solution.server.compute.scoring import Answers, Scorable
from solution.server.engine.scheduler import Batch, Outcome
from solution.server.errors import ServiceError

log = logging.getLogger(__name__)


@dataclass
class BatchReport:
    """What one batch did; observers (metrics, tests) receive one per batch, before its answers."""

    texts: int  # texts answered by this batch, duplicates included
    unique_texts: int  # rows computed
    tokens: int  # real tokens of the rows (the longest family's per row)
    padding: dict[str, float]  # tokenizer family -> share of computed positions that were padding
    forward_calls: int
    origins: Counter[str]
    wall_s: float  # the batch from cut to answers (a pipelined batch's overlap the one before)
    model_gpu_seconds: dict[str, float]  # per model; on a GPU they overlap (one stream each)
    failed_texts: int = 0
    warmup: bool = False
    calls_by_path: Counter[str] = field(default_factory=Counter)  # "graph"/"eager": model calls
    gpu_busy_s: float = 0.0  # the runner's GPU span, summed over the batch's runs (RunOutput)


def run_batch(
    computer: BatchComputer, models: Sequence[Scorable], batch: Batch
) -> tuple[list[Outcome], BatchReport]:
    started = time.perf_counter()
    return answer(models, batch, computer.compute(batch.ids, batch.wanted), started)


def answer(
    models: Sequence[Scorable], batch: Batch, computed: Computed, started: float
) -> tuple[list[Outcome], BatchReport]:
    """Each entry's answer from the batch's logits, and the report (``started``: perf_counter
    when the batch's compute began)."""
    answers = Answers(models, computed.logits)
    outcomes: list[Outcome] = []
    for entry, row in zip(batch.entries, batch.row_of_entry, strict=True):
        failure = computed.failed.get(row)
        if failure is not None:  # one exception object per text, never shared
            outcomes.append((entry, type(failure)(str(failure))))
            continue
        options = entry.submission.ticket.options
        wanted = entry.submission.wanted
        outcomes.append((entry, answers.answer(row, wanted, options.top_k, options.raw_scores)))
    report = BatchReport(
        texts=len(batch.entries),
        unique_texts=len(batch.texts),
        tokens=sum(max(len(ids[r]) for ids in batch.ids) for r in range(len(batch.texts))),
        padding={
            name: 1.0 - real / positions if positions else 0.0
            for name, (real, positions) in computed.positions.items()
        },
        forward_calls=computed.forward_calls,
        origins=Counter(e.submission.origin for e in batch.entries),
        wall_s=time.perf_counter() - started,
        model_gpu_seconds=dict(zip([m.key for m in models], computed.gpu_seconds, strict=True)),
        failed_texts=sum(isinstance(o, ServiceError) for _, o in outcomes),
        warmup=batch.warmup,
        calls_by_path=computed.calls_by_path,
        gpu_busy_s=computed.gpu_busy_s,
    )
    return outcomes, report


def notify(observers: Sequence[Callable[[BatchReport], None]], report: BatchReport) -> None:
    """Hand ``report`` to every observer; the engine calls it before delivering the batch's
    answers (a batch's report exists once any of its clients has an answer: metrics and tests
    rely on it). A failing observer is logged and costs no answer."""
    for observer in observers:
        try:
            observer(report)
        except Exception:
            log.exception("batch observer failed")
