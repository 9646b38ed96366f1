"""The batching engine: worker threads around one ``Scheduler``, and delivery to the event loop.

All queue state lives in the scheduler (plain state, ``scheduler.py``): admission, the batches it
cuts, deadlines, who left. This module owns only the threads, the hand-offs between them and the
answers' way back:

    submit (event loop) --admit--> Scheduler <--take/tokenized-- [tokenize threads: short, long]
                                       |  cut (when the compute thread can take a batch)
                                       v
                   [compute thread] Pipeline: BatchComputer (plan -> Runner -> logits) -> Answers
                                       |  call_soon_threadsafe(deliver), once per batch
                                       v
                                 futures (event loop)

What crosses threads crosses here, through the scheduler, under ``self.lock``; each worker
waits on a condition of that one lock, and a change wakes only the workers it gives work to (a
text admitted wakes its lane's tokenizer and the compute thread, a tokenized chunk the compute
thread): a woken thread takes the GIL from whoever serves requests, so waking all three for every
change cost two useless wake-ups per request. Tokenization runs ahead while the models compute;
the batch is cut only when the compute thread is free, so it holds everything that queued
meanwhile (on CUDA also right after a launch: a batch ready then is staged while the GPU
computes, ``pipeline.py``).

Every worker loop is supervised: an unexpected exception (or a device error that poisons the CUDA
context) answers every held text with ``ModelFailure``, turns readiness off, is logged once and is
reported to ``on_fatal`` (the app exits non-zero so the orchestrator restarts the process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from solution.server.compute.batch import BatchComputer
from solution.server.compute.families import Family, tokenize
from solution.server.compute.models import LoadedModel
from solution.server.compute.runner import HeapTrimmer, Runner
from solution.server.compute.scoring import Result
from solution.server.engine.batches import BatchReport, notify
from solution.server.engine.entries import Client
from solution.server.engine.limits import BatchingLimits
from solution.server.engine.options import DEFAULT, Options
from solution.server.engine.pipeline import Pipeline
from solution.server.engine.scheduler import (
    Batch,
    Lane,
    Outcome,
    Scheduler,
    Snapshot,
    Submission,
)
from solution.server.errors import DeadlineExceeded, ModelFailure, ServiceError

__all__ = ["BatchReport", "Engine"]

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    """The event loop's side of one submission: its future and the answers collected so far."""

    future: asyncio.Future[list[Result]]
    results: list[Result | None]
    remaining: int
    options: Options = DEFAULT  # read by the threads, which tokenize and shape the answers


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
        self.computer = BatchComputer(
            self.runner, self.families, limits.micro_batch_tokens, limits.max_batch_texts
        )
        self.keys = [m.key for m in self.models]
        self.observers: list[Callable[[BatchReport], None]] = []
        self.on_fatal: Callable[[BaseException], None] | None = None  # called on the event loop
        self.failure: BaseException | None = None  # what killed a worker, once one died
        # The queue's state. Read or change it only under ``lock``; tests inject faults into it.
        self.scheduler = Scheduler(limits, len(self.families))
        self.lock = threading.RLock()  # guards the scheduler
        # Who waits for what, on that lock: each tokenizer for texts of its lane, the compute
        # thread for a batch (texts tokenized, or the wait for more ending).
        self._tokenizer_wakeup = {lane: threading.Condition(self.lock) for lane in Lane}
        self._compute_wakeup = threading.Condition(self.lock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads: list[threading.Thread] = []
        self._idle = asyncio.Event()
        # The compute thread's nice value (0: as the process). On a CPU the event loop, which
        # admits, refuses and answers, then runs before the bulk work when cores are short:
        # beside a 10,000-call gRPC flood on 2 cores refusals took p99 3.7-3.8 s instead of
        # 5.4 s, and a light client's calls p50 0.08 s instead of 0.38 s (the flood's own compute
        # waits instead). The tokenizers keep the process's: every request waits for them.
        self.worker_nice = 0

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
        """One real batch through the whole path; only then does the scheduler admit clients."""
        await self.submit(texts, origin="warmup")
        with self.lock:
            self.scheduler.open()

    async def drain(self, grace_s: float) -> bool:
        """Refuse new work, then wait up to ``grace_s`` for admitted work; True if all finished."""
        with self.lock:
            self.scheduler.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), grace_s)
        return self._idle.is_set()

    def stop(self) -> None:
        """Stop the threads; anything still waiting is answered ``ShuttingDown`` and a batch in
        hand finishes first. Blocking: call it from a worker thread (``asyncio.to_thread``)."""
        with self.lock:
            outcomes = self.scheduler.stop()
            self._wake_all()
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
        client: Client | None = None,
    ) -> list[Result]:
        """Classify ``texts`` for ``client`` (fair share's key; None: one of its own); results in
        input order; ``options`` (checked with ``Options.check``): the models, the answers' shape.

        Raises what ``Scheduler.admit`` refuses with (``NotReady``, ``ShuttingDown``,
        ``Overloaded``) at once, ``DeadlineExceeded`` when ``deadline`` (``time.monotonic()``)
        passes before compute, ``ModelFailure`` if a model fails a text.
        """
        if not texts:
            return []
        assert self._loop is not None, "Engine.start() was not called"
        options = options or DEFAULT
        future: asyncio.Future[list[Result]] = self._loop.create_future()
        pending = _Pending(future, [None] * len(texts), len(texts), options)
        wanted = None if options.models is None else frozenset(map(self.keys.index, options.models))
        submission = Submission(len(texts), deadline, origin, pending, wanted, options.truncate)
        submission.client = client or submission.client
        with self.lock:
            shed = self.scheduler.admit(submission, texts)
            for lane in {entry.lane for entry in submission.entries}:
                self._tokenizer_wakeup[lane].notify()
            self._compute_wakeup.notify()  # it marks what the next cut waits for
        if shed:  # submissions shed to make room for a lighter client: Overloaded
            self._deliver(shed)
        self._idle.clear()
        timer = None
        if deadline is not None:
            delay = max(0.0, deadline - time.monotonic())
            timer = self._loop.call_later(delay, self._expire, submission)
        try:
            return await future
        except asyncio.CancelledError:
            with self.lock:
                self.scheduler.cancel(submission)  # its waiting texts leave queue and budget now
                self._compute_wakeup.notify()  # a cut waiting for them need not any more
            self._check_idle()
            raise
        finally:
            if timer is not None:
                timer.cancel()
            # An error set on the future (shed, expired, failed) is raised with this frame in its
            # traceback, and the frame holds the future, which holds the error: a cycle that kept
            # the submission (its texts, token ids, partial answers) until a full collection
            # (beside two clients sending 256 texts and closing: 19,000 objects per 10 s).
            del future, pending, submission, timer

    def client_closed(self, client: Client) -> None:
        """``client``'s connection closed its side: what it has waiting is served last."""
        with self.lock:
            self.scheduler.client_closed(client)

    def _expire(self, submission: Submission) -> None:
        """The deadline passed (event loop timer): the scheduler drops what has not started."""
        with self.lock:
            dropped = self.scheduler.expire(submission)
        pending: _Pending = submission.ticket
        if dropped and not pending.future.done():
            pending.future.set_exception(DeadlineExceeded("deadline passed before compute"))
        self._check_idle()

    # ---- what the scheduler knows, for the service, metrics and tests ---------------------------

    @property
    def ready(self) -> bool:
        return self.snapshot().ready

    @property
    def accepting(self) -> bool:
        return self.snapshot().accepting

    @property
    def idle(self) -> bool:
        with self.lock:
            return self.scheduler.idle

    @property
    def waiting_texts(self) -> int:
        """Texts admitted and not yet in a batch (what ``queue_texts`` limits)."""
        return self.snapshot().waiting_texts

    def snapshot(self) -> Snapshot:
        """The scheduler's counts, read at once (metrics, tests, the service's readiness)."""
        with self.lock:
            return self.scheduler.snapshot()

    # ---- worker threads -----------------------------------------------------------------------

    def _supervised(self, name: str, loop: Callable[[], None]) -> None:
        if self.worker_nice and name == "compute":  # this thread only (a Linux task of its own)
            with contextlib.suppress(OSError, AttributeError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.worker_nice)
        try:
            loop()
        except BaseException as exc:  # a dead worker must not be a silent outage
            self._fatal(name, exc)

    def _fatal(self, where: str, exc: BaseException) -> None:
        """A worker died or the device is lost: answer everything held, stop, tell the app."""
        with self.lock:
            if self.failure is not None:
                return  # the first failure is the one logged and reported
            self.failure = exc
            outcomes = self.scheduler.abort(
                ModelFailure, "the service failed and is restarting; retry"
            )
            self._wake_all()
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
            self.on_fatal(exc)  # the app stops and exits non-zero

    def _wake_all(self) -> None:
        """Wake every worker (stop, abort): each sees the scheduler stopped. Under the lock."""
        for condition in (*self._tokenizer_wakeup.values(), self._compute_wakeup):
            condition.notify_all()

    def _tokenize_loop(self, lane: Lane) -> None:
        wakeup = self._tokenizer_wakeup[lane]
        while True:
            with self.lock:
                while not (chunk := self.scheduler.take_for_tokenizing(lane)):
                    if self.scheduler.stopped:
                        return
                    wakeup.wait()
            ids = tokenize(self.families, self.keys, chunk)
            with self.lock:
                outcomes = self.scheduler.tokenized(chunk, ids)
                self._compute_wakeup.notify()
            self._send(outcomes)

    def _compute_loop(self) -> None:
        trimmer = HeapTrimmer()
        pipeline = Pipeline(self.computer, self.models, self.runner.device.type == "cuda")
        while True:
            if not pipeline.busy:  # nothing in hand: wait for a batch (none once stopped)
                if (batch := self._cut(wait=True)) is None:
                    return
                pipeline.start(batch)
            if pipeline.wants_next and (ahead := self._cut(wait=False)) is not None:
                pipeline.stage(ahead)  # on CUDA, while the GPU computes the launched batch
            batch, outcomes, report = pipeline.finish()  # ...which launches the staged one
            with self.lock:
                failed = [e for e, outcome in outcomes if isinstance(outcome, ServiceError)]
                self.scheduler.finish(batch, failed)
                idle = self.scheduler.waiting_texts == 0 and not pipeline.busy
            notify(self.observers, report)  # before delivery: metrics and tests rely on it
            self._send(outcomes)
            trimmer.maybe_trim(idle=idle)

    def _cut(self, wait: bool) -> Batch | None:
        """The scheduler's next batch; None once stopped. ``wait``: until it has one; else only
        one it cuts right now (a look ahead with a batch in flight never waits for more)."""
        with self.lock:
            while not self.scheduler.stopped:
                cut = self.scheduler.cut(time.monotonic())
                self._send(cut.dropped)
                if cut.batch is not None or not wait:
                    return cut.batch
                self._compute_wakeup.wait(cut.wait_s)
        return None

    # ---- back on the event loop -----------------------------------------------------------------

    def _send(self, outcomes: list[Outcome]) -> None:
        """Hand answers to the event loop (from any thread), once per call."""
        if outcomes and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._deliver, outcomes)

    def _deliver(self, outcomes: list[Outcome]) -> None:
        """Runs on the event loop: settle every submission whose texts are done."""
        for entry, outcome in outcomes:
            pending: _Pending = entry.submission.ticket
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
