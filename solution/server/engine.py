"""The batching engine: the one entry point every front-end calls, ``Engine.submit(texts)``.

All queue state lives in a ``Scheduler`` (plain state, ``scheduler.py``); this module is the thin
layer of threads around it and the hand-over to the event loop:

    submit (event loop) --admit--> Scheduler <--take/tokenized-- [tokenize threads: short, long]
                                       |  cut (when the compute thread is free)
                                       v
                             [compute thread] plan -> Runner (models) -> scores -> finish
                                       |  call_soon_threadsafe(deliver), once per batch
                                       v
                                 futures (event loop)

What crosses threads crosses here, through the scheduler, under ``self._lock`` (a Condition that
also wakes the workers); answers go back to the event loop once per batch. Tokenization runs ahead
while the models compute; the batch is cut only when the compute thread is free, so it holds
everything that queued meanwhile.

Every worker loop is supervised: an unexpected exception (or a device error that poisons the CUDA
context) answers every held text with ``ModelFailure``, turns readiness off, is logged once and is
reported to ``on_fatal`` (the app exits non-zero so the orchestrator restarts the process). A batch
that raises an ordinary error is split in halves and retried, so only the text that really fails
gets an error; the engine keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from . import batching, scoring
from .errors import DeadlineExceeded, ModelFailure, NotReady, Overloaded, ServiceError, ShuttingDown
from .families import Family
from .models import LoadedModel
from .runner import FamilyWork, ForwardCall, HeapTrimmer, Runner, is_fatal_device_error
from .scheduler import Batch, BatchingLimits, Lane, Outcome, Request, Scheduler

__all__ = ["BatchReport", "BatchingLimits", "Engine", "Prediction", "Result"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Prediction:
    """One model's answer for one text; orjson writes it as {"score": ..., "label": ...}."""

    score: float
    label: str


Result = dict[str, Prediction]  # response key -> prediction, in the configured model order


@dataclass
class BatchReport:
    """What one batch did; observers (metrics, tests) receive one per batch, before its answers."""

    texts: int  # texts answered by this batch, duplicates included
    unique_texts: int  # rows computed
    tokens: int  # real tokens of the rows (the longest family's per row)
    padding: dict[str, float]  # tokenizer family -> share of computed positions that were padding
    forward_calls: int
    origins: Counter[str]
    wall_s: float  # the batch from cut to answers
    model_gpu_seconds: dict[str, float]  # per model; on a GPU they overlap (one stream each)
    failed_texts: int = 0
    warmup: bool = False


@dataclass
class _Pending:
    """The event loop's side of one request: its future and the answers collected so far."""

    future: asyncio.Future[list[Result]]
    results: list[Result | None]
    remaining: int


@dataclass
class _Computed:
    """Answers for some rows of a batch, with what computing them cost."""

    results: dict[int, Result | ServiceError]
    gpu_seconds: list[float]
    forward_calls: int = 0
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)  # family: (real, computed)

    def __add__(self, other: _Computed) -> _Computed:
        positions = dict(self.positions)
        for name, (real, computed) in other.positions.items():
            r, c = positions.get(name, (0, 0))
            positions[name] = (r + real, c + computed)
        return _Computed(
            {**self.results, **other.results},
            [a + b for a, b in zip(self.gpu_seconds, other.gpu_seconds, strict=True)],
            self.forward_calls + other.forward_calls,
            positions,
        )


class Engine:
    def __init__(
        self,
        models: Sequence[LoadedModel],
        families: Sequence[Family],
        device: torch.device,
        limits: BatchingLimits,
    ):
        self.models = list(models)
        self.families = list(families)
        self.limits = limits
        self.runner = Runner(self.models, device)
        self.keys = [m.key for m in self.models]
        self.observers: list[Callable[[BatchReport], None]] = []
        self.on_fatal: Callable[[BaseException], None] | None = None  # called on the event loop
        self.ready = False
        self.accepting = True
        self.failure: BaseException | None = None  # what killed a worker, once one died
        self.refusals: Counter[str] = Counter()  # reason -> requests refused at admission
        self._overload_logged_at = 0.0

        self._lock = threading.Condition()  # guards the scheduler; wakes the worker threads
        self._scheduler = Scheduler(limits, len(self.families))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads: list[threading.Thread] = []
        self._idle = asyncio.Event()

    # ---- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Bind to the running event loop and start the worker threads."""
        self._loop = asyncio.get_running_loop()
        self._idle.set()
        workers: list[tuple[str, Callable[[], None]]] = [
            ("tokenize-short", lambda: self._tokenize_loop(Lane.SHORT)),
            ("tokenize-long", lambda: self._tokenize_loop(Lane.LONG)),
            ("compute", self._compute_loop),
        ]
        for name, target in workers:
            thread = threading.Thread(
                target=self._supervised, args=(name, target), name=f"engine-{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    async def warm_up(self, texts: Sequence[str]) -> None:
        """One real batch through the whole path; only then is the engine ready."""
        await self.submit(texts, origin="warmup", admit_unready=True)
        self.ready = self.accepting  # a SIGTERM during warm-up keeps it not ready

    async def drain(self, grace_s: float) -> bool:
        """Refuse new work, then wait up to ``grace_s`` for admitted work; True if all finished."""
        self.accepting = False
        self.ready = False
        try:
            await asyncio.wait_for(self._idle.wait(), grace_s)
            return True
        except TimeoutError:
            return False

    def stop(self) -> None:
        """Stop the threads; anything still waiting is answered ``ShuttingDown`` and a batch in
        hand finishes first. Blocking: call it from a worker thread (``asyncio.to_thread``)."""
        self.accepting = False
        with self._lock:
            outcomes = self._scheduler.stop()
            self._lock.notify_all()
        self._send(outcomes)
        for thread in self._threads:
            thread.join(timeout=30)

    # ---- the entry point ----------------------------------------------------------------------

    async def submit(
        self,
        texts: Sequence[str],
        *,
        deadline: float | None = None,
        origin: str = "",
        admit_unready: bool = False,
    ) -> list[Result]:
        """Classify ``texts`` with every model; results in input order.

        Raises ``Overloaded`` at once when the queue cannot take them, ``ShuttingDown`` while
        draining, ``NotReady`` before warm-up, ``DeadlineExceeded`` when ``deadline``
        (``time.monotonic()``) passes before compute, ``ModelFailure`` if a model fails a text.
        """
        if not self.accepting:
            self.refusals["shutting_down"] += 1
            raise ShuttingDown("the service is shutting down")
        if not (self.ready or admit_unready):
            self.refusals["not_ready"] += 1
            raise NotReady()
        if not texts:
            return []
        assert self._loop is not None, "Engine.start() was not called"
        future: asyncio.Future[list[Result]] = self._loop.create_future()
        request = Request(
            len(texts), deadline, origin, _Pending(future, [None] * len(texts), len(texts))
        )
        with self._lock:
            try:
                self._scheduler.admit(request, texts)
            except Overloaded:
                self._refuse_overloaded(self._scheduler.waiting_texts)
                raise
            except ShuttingDown:  # the scheduler stopped (a worker failed) before accepting did
                self.refusals["shutting_down"] += 1
                raise
            self._lock.notify_all()
        self._idle.clear()
        timer = None
        if deadline is not None:
            timer = self._loop.call_later(
                max(0.0, deadline - time.monotonic()), self._expire, request
            )
        try:
            return await future
        except asyncio.CancelledError:
            with self._lock:
                self._scheduler.cancel(request)  # its waiting texts leave queue and budget now
                self._lock.notify_all()
            self._check_idle()
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def _refuse_overloaded(self, waiting: int) -> None:
        self.refusals["overloaded"] += 1
        now = time.monotonic()
        if now - self._overload_logged_at >= 1.0:  # one line per second, not one per refusal
            self._overload_logged_at = now
            log.warning(
                "overloaded: refusing requests",
                extra={
                    "waiting_texts": waiting,
                    "queue_texts": self.limits.queue_texts,
                    "refused_total": self.refusals["overloaded"],
                },
            )

    def _expire(self, request: Request) -> None:
        """The request's deadline passed (event loop timer): answer it now unless all of its
        texts are already computing, in which case their answers are moments away."""
        with self._lock:
            dropped = self._scheduler.expire(request)
        pending: _Pending = request.ticket
        if dropped and not pending.future.done():
            pending.future.set_exception(DeadlineExceeded("deadline passed before compute"))
        self._check_idle()

    # ---- what the scheduler knows, for metrics and tests ----------------------------------------

    @property
    def waiting_texts(self) -> int:
        """Texts admitted and not yet in a batch (what ``queue_texts`` limits)."""
        with self._lock:
            return self._scheduler.waiting_texts

    @property
    def computing_texts(self) -> int:
        with self._lock:
            return self._scheduler.computing_texts

    @property
    def idle(self) -> bool:
        with self._lock:
            return self._scheduler.idle

    @property
    def dropped_texts(self) -> Counter[str]:
        """Texts that left without compute, by reason."""
        with self._lock:
            return Counter(self._scheduler.dropped)

    # ---- worker threads -----------------------------------------------------------------------

    def _supervised(self, name: str, loop: Callable[[], None]) -> None:
        try:
            loop()
        except BaseException as exc:  # a dead worker must not be a silent outage
            self._fatal(name, exc)

    def _fatal(self, where: str, exc: BaseException) -> None:
        """A worker died or the device is lost: answer everything held, stop, tell the app."""
        with self._lock:
            if self.failure is not None:
                return  # the first failure is the one logged and reported
            self.failure = exc
            self.accepting = False
            self.ready = False
            outcomes = self._scheduler.abort(
                ModelFailure, "the service failed and is restarting; retry"
            )
            self._lock.notify_all()
        self._send(outcomes)
        log.critical(
            "engine worker failed; the service stops",
            exc_info=(type(exc), exc, exc.__traceback__),
            extra={"worker": where, "answered_texts": len(outcomes)},
        )
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._report_fatal, exc)

    def _report_fatal(self, exc: BaseException) -> None:
        self._check_idle()
        if self.on_fatal is not None:
            self.on_fatal(exc)

    def _tokenize_loop(self, lane: Lane) -> None:
        while True:
            with self._lock:
                while not (chunk := self._scheduler.take_for_tokenizing(lane)):
                    if self._scheduler.stopped:
                        return
                    self._lock.wait()
            ids = self._tokenize([e.text for e in chunk])
            with self._lock:
                outcomes = self._scheduler.tokenized(chunk, ids)
                self._lock.notify_all()
            self._send(outcomes)

    def _tokenize(self, texts: list[str]) -> list[list[list[int]] | ServiceError]:
        """Ids per text per family; a text the tokenizer fails on gets its own error."""
        try:
            per_family = [family.encode(texts) for family in self.families]
        except Exception as exc:
            if len(texts) > 1:
                return [r for t in texts for r in self._tokenize([t])]
            log.error("tokenizer failure on one text", extra={"error": repr(exc)})
            return [ModelFailure(f"the tokenizer failed on this text: {exc}")]
        return [[ids[i] for ids in per_family] for i in range(len(texts))]

    def _compute_loop(self) -> None:
        trimmer = HeapTrimmer()
        while True:
            with self._lock:
                batch: Batch | None = None
                while batch is None:
                    if self._scheduler.stopped:
                        return
                    cut = self._scheduler.cut(time.monotonic())
                    self._send(cut.dropped)
                    batch = cut.batch
                    if batch is None:
                        self._lock.wait(cut.wait_s)
            outcomes, report = self._compute(batch)
            with self._lock:
                failed = [e for e, outcome in outcomes if isinstance(outcome, ServiceError)]
                self._scheduler.finish(batch, failed)
                idle = self._scheduler.waiting_texts == 0
            # Observers run before delivery, so a batch's report exists by the time any of its
            # clients has an answer (metrics and tests rely on that). A failing observer costs no
            # answer.
            for observer in self.observers:
                try:
                    observer(report)
                except Exception:
                    log.exception("batch observer failed")
            self._send(outcomes)
            trimmer.maybe_trim(idle=idle)

    # ---- computing a batch (compute thread) -----------------------------------------------------

    def _compute(self, batch: Batch) -> tuple[list[Outcome], BatchReport]:
        started = time.perf_counter()
        computed = self._compute_rows(batch, list(range(len(batch.texts))))
        outcomes: list[Outcome] = []
        for entry, row in zip(batch.entries, batch.row_of_entry, strict=True):
            result = computed.results[row]
            if isinstance(result, ServiceError):  # one exception object per text, never shared
                result = type(result)(str(result))
            outcomes.append((entry, result))
        report = BatchReport(
            texts=len(batch.entries),
            unique_texts=len(batch.texts),
            tokens=sum(max(len(ids[r]) for ids in batch.ids) for r in range(len(batch.texts))),
            padding={
                name: 1.0 - real / positions if positions else 0.0
                for name, (real, positions) in computed.positions.items()
            },
            forward_calls=computed.forward_calls,
            origins=Counter(e.request.origin for e in batch.entries),
            wall_s=time.perf_counter() - started,
            model_gpu_seconds=dict(zip(self.keys, computed.gpu_seconds, strict=True)),
            failed_texts=sum(isinstance(o, ServiceError) for _, o in outcomes),
            warmup=batch.warmup,
        )
        return outcomes, report

    def _compute_rows(self, batch: Batch, rows: list[int]) -> _Computed:
        """Answers for ``rows`` (unique texts); on failure split in halves and retry, so only a
        text that fails alone gets an error. A device error that poisons the context is not
        retried: it propagates to the supervisor."""
        try:
            work, calls, positions = self._plan(batch, rows)
            out = self.runner.run(work, len(rows))
        except Exception as exc:
            if is_fatal_device_error(exc):
                raise
            if isinstance(exc, torch.cuda.OutOfMemoryError):
                torch.cuda.empty_cache()
            if len(rows) == 1:
                log.error("model failure on one text", extra={"error": repr(exc)})
                failure = ModelFailure(f"a model failed on this text: {exc}")
                return _Computed({rows[0]: failure}, [0.0] * len(self.models))
            half = len(rows) // 2
            return self._compute_rows(batch, rows[:half]) + self._compute_rows(batch, rows[half:])
        return _Computed(self._merge(out.logits, rows), out.gpu_seconds, calls, positions)

    def _plan(
        self, batch: Batch, rows: list[int]
    ) -> tuple[list[FamilyWork], int, dict[str, tuple[int, int]]]:
        """Forward calls per family for the given rows (the runner's rows are 0..len(rows)-1),
        with the real and computed token positions per family."""
        work = []
        n_calls = 0
        positions: dict[str, tuple[int, int]] = {}
        for f, family in enumerate(self.families):
            seqs = [batch.ids[f][r] for r in rows]
            lengths = [len(s) for s in seqs]
            groups = batching.plan_micro_batches(
                lengths, self.limits.micro_batch_tokens, self.limits.max_batch_texts
            )
            calls = [_forward_call(seqs, group, family.pad_id) for group in groups]
            n_calls += len(calls)
            positions[family.name] = batching.positions(lengths, groups)
            work.append(FamilyWork(family.members, calls))
        return work, n_calls, positions

    def _merge(self, logits: np.ndarray, rows: list[int]) -> dict[int, Result | ServiceError]:
        """Per text, one dict in the configured key order (scores vectorised per model)."""
        per_model = []
        for m, model in enumerate(self.models):
            index, score = scoring.top1_softmax(logits[m, :, : len(model.labels)])
            per_model.append((model.key, model.labels, index, score))
        return {
            row: {
                key: Prediction(score[i], labels[index[i]])
                for key, labels, index, score in per_model
            }
            for i, row in enumerate(rows)
        }

    # ---- back on the event loop -----------------------------------------------------------------

    def _send(self, outcomes: list[Outcome]) -> None:
        """Hand answers to the event loop (from any thread), once per call."""
        if outcomes and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._deliver, outcomes)

    def _deliver(self, outcomes: list[Outcome]) -> None:
        """Runs on the event loop: settle every request whose texts are done."""
        for entry, outcome in outcomes:
            pending: _Pending = entry.request.ticket
            if pending.future.done():
                continue  # cancelled, expired or failed already
            if isinstance(outcome, ServiceError):
                pending.future.set_exception(outcome)
                continue
            pending.results[entry.slot] = outcome
            pending.remaining -= 1
            if pending.remaining == 0:
                pending.future.set_result(pending.results)  # type: ignore[arg-type]
        self._check_idle()

    def _check_idle(self) -> None:
        if self.idle:
            self._idle.set()


def _forward_call(seqs: list[list[int]], group: list[int], pad_id: int) -> ForwardCall:
    longest = max(len(seqs[i]) for i in group)
    ids = np.full((len(group), longest), pad_id, dtype=np.int64)
    mask = np.zeros((len(group), longest), dtype=np.int64)
    for j, i in enumerate(group):
        ids[j, : len(seqs[i])] = seqs[i]
        mask[j, : len(seqs[i])] = 1
    return ForwardCall(group, torch.from_numpy(ids), torch.from_numpy(mask))
