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

from solution.server.compute import planning, scoring
from solution.server.compute.families import Family
from solution.server.compute.models import LoadedModel
from solution.server.compute.runner import HeapTrimmer, Runner, is_fatal_device_error
from solution.server.engine.errors import (
    DeadlineExceeded,
    InvalidInput,
    ModelFailure,
    NotReady,
    Overloaded,
    ServiceError,
    ShuttingDown,
)
from solution.server.engine.options import DEFAULT, SINGLE, Options
from solution.server.engine.scheduler import (
    Batch,
    BatchingLimits,
    Entry,
    Lane,
    Outcome,
    Request,
    Scheduler,
)

__all__ = ["BatchReport", "BatchingLimits", "Engine", "Prediction", "Result"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Prediction:
    """One model's answer for one text; orjson writes it as {"score": ..., "label": ...}."""

    score: float
    label: str


# response key -> its answer, in the configured model order: one prediction (the contract), or
# a ranked list when the request asked for ``top_k``
Result = dict[str, Prediction | list[Prediction]]


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
    options: Options = DEFAULT  # read by the compute thread, which formats the answers


@dataclass
class _Computed:
    """Answers for some rows of a batch, with what computing them cost."""

    results: dict[int, Result | ServiceError]  # per row: the contract's answer of its models
    gpu_seconds: list[float]
    forward_calls: int = 0
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)  # family: (real, computed)
    logits: dict[int, np.ndarray] = field(default_factory=dict)  # per row: (models, labels)

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
            {**self.logits, **other.logits},
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
        options: Options | None = None,
        origin: str = "",
        admit_unready: bool = False,
    ) -> list[Result]:
        """Classify ``texts``; results in input order. ``options`` (checked by the caller with
        ``Options.check``) name the models to compute and the shape of the answers.

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
        options = options or DEFAULT
        pending = _Pending(future, [None] * len(texts), len(texts), options)
        wanted = None
        if options.models is not None:
            wanted = frozenset(self.keys.index(key) for key in options.models)
        request = Request(len(texts), deadline, origin, pending, wanted)
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
            ids = self._tokenize(chunk)
            with self._lock:
                outcomes = self._scheduler.tokenized(chunk, ids)
                self._lock.notify_all()
            self._send(outcomes)

    def _tokenize(self, entries: list[Entry]) -> list[list[list[int]] | ServiceError]:
        """Ids per text per family (none for a family whose models the text's request does not
        want); a text the tokenizer fails on, or that is too long for ``truncate: false``, gets
        its own error."""
        try:
            out: list[list[list[int]] | ServiceError] = [[[]] * len(self.families) for _ in entries]
            for f, family in enumerate(self.families):
                needing = [i for i, e in enumerate(entries) if _needs(e.request, family)]
                if not needing:
                    continue
                encoded = family.encode([entries[i].text for i in needing])
                for i, ids in zip(needing, encoded, strict=True):
                    result = out[i]
                    if isinstance(result, ServiceError):
                        continue
                    result[f] = ids
                    pending: _Pending = entries[i].request.ticket
                    if not pending.options.truncate and len(ids) >= family.max_tokens:
                        count = family.count(entries[i].text)
                        if count > family.max_tokens:
                            out[i] = _too_long(entries[i], family, count, self.keys)
            return out
        except Exception as exc:
            if len(entries) > 1:
                return [r for e in entries for r in self._tokenize([e])]
            log.error("tokenizer failure on one text", extra={"error": repr(exc)})
            return [ModelFailure(f"the tokenizer failed on this text: {exc}")]

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
                outcomes.append((entry, type(result)(str(result))))
                continue
            options = entry.request.ticket.options
            if not options.is_default:
                result = self._answer(result, computed.logits[row], entry.request.wanted, options)
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
            plan = planning.plan(
                batch.ids,
                self.families,
                rows,
                self.limits.micro_batch_tokens,
                self.limits.max_batch_texts,
                batch.wanted,
            )
            out = self.runner.run(plan.work, len(rows))
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
        results = self._merge(out.logits, rows, batch.wanted)
        logits = {row: out.logits[:, i] for i, row in enumerate(rows)}
        return _Computed(results, out.gpu_seconds, plan.calls, plan.positions, logits)

    def _merge(
        self, logits: np.ndarray, rows: list[int], wanted: Sequence[frozenset[int] | None]
    ) -> dict[int, Result | ServiceError]:
        """Per row, the contract's answer of the models it computed, in the configured key
        order (scores vectorised per model)."""
        per_model = []
        for m, model in enumerate(self.models):
            index, score = scoring.top1(logits[m, :, : len(model.labels)], model.function)
            per_model.append((m, model.key, model.labels, index, score))
        merged: dict[int, Result | ServiceError] = {}
        for i, row in enumerate(rows):
            want = wanted[row]
            merged[row] = {
                key: Prediction(score[i], labels[index[i]])
                for m, key, labels, index, score in per_model
                if want is None or m in want
            }
        return merged

    def _answer(
        self,
        row: Result,
        logits: np.ndarray,
        wanted: frozenset[int] | None,
        options: Options,
    ) -> Result:
        """One text's answer shaped by its request's options (models, ``top_k``, raw scores)."""
        answer: Result = {}
        for m, model in enumerate(self.models):
            if wanted is not None and m not in wanted:
                continue
            if options.top_k == SINGLE and not options.raw_scores:
                answer[model.key] = row[model.key]
                continue
            single = options.top_k == SINGLE
            ranked = scoring.ranked(
                logits[m, : len(model.labels)],
                model.function,
                1 if single else options.top_k,
                options.raw_scores,
                None if single else model.spec.threshold,
            )
            labels = [Prediction(score, model.labels[i]) for i, score in ranked]
            answer[model.key] = labels[0] if single else labels
        return answer

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


def _needs(request: Request, family: Family) -> bool:
    return request.wanted is None or any(m in request.wanted for m in family.members)


def _too_long(entry: Entry, family: Family, count: int, keys: Sequence[str]) -> InvalidInput:
    models = ", ".join(keys[m] for m in family.members)
    where = f"text {entry.slot}" if entry.request.size > 1 else "the text"
    return InvalidInput(
        f"{where} has {count} tokens; {models} accept at most {family.max_tokens} "
        "(set truncate to true to cut it)"
    )
