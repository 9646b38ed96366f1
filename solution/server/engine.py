"""The batching engine: the one entry point every front-end calls, ``Engine.submit(texts)``.

A request's texts become queue entries. Two threads do the work:

    submit (event loop) -> queue -> [prepare thread] tokenize per family, ahead of need;
                                    when the compute thread is free: budget, dedupe -> batch
                                 -> one-slot channel -> [compute thread] models, top-1, merge
                                 -> call_soon_threadsafe(deliver) once per batch -> futures

Tokenization runs ahead, overlapping the models, but a batch is cut only when the compute thread
asks for one, so it holds everything that queued meanwhile. (Cutting it as soon as the previous
batch started, as a one-batch-ahead pipeline does, made closed-loop clients alternate between a
batch of one and a batch of everyone else: measured 0.73 x the bare batched limit on a CPU.)

Admission is decided at ``submit``: a full queue refuses at once (``Overloaded``) instead of
growing. Entries whose client left or whose deadline passed are dropped before any compute. A
batch that raises is split in halves and retried, so only the text that really fails gets an
error; the engine keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from . import batching
from .errors import DeadlineExceeded, ModelFailure, NotReady, Overloaded, ShuttingDown
from .families import Family
from .models import LoadedModel
from .runner import FamilyWork, ForwardCall, HeapTrimmer, Runner

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Prediction:
    """One model's answer for one text; orjson writes it as {"score": ..., "label": ...}."""

    score: float
    label: str


Result = dict[str, Prediction]  # response key -> prediction, in the configured model order


@dataclass(frozen=True)
class BatchingLimits:
    max_batch_texts: int = 128
    max_batch_tokens: int = 16384
    micro_batch_tokens: int = 4096
    max_wait_s: float = 0.0
    queue_texts: int = 2048


@dataclass
class BatchReport:
    """What one batch did; observers (metrics, tests) receive one per batch."""

    texts: int
    unique_texts: int
    tokens: int
    padded_tokens: int
    forward_calls: int
    origins: Counter[str]
    compute_s: float
    model_seconds: dict[str, float]
    failed_texts: int = 0
    dropped_texts: int = 0


class _Request:
    __slots__ = ("cancelled", "deadline", "future", "origin", "remaining", "results")

    def __init__(
        self, n: int, future: asyncio.Future[list[Result]], deadline: float | None, origin: str
    ):
        self.future = future
        self.results: list[Result | None] = [None] * n
        self.remaining = n
        self.deadline = deadline  # time.monotonic() value, or None
        self.origin = origin
        self.cancelled = False  # set on the event loop, read by the prepare thread


@dataclass(slots=True)
class _Entry:
    text: str
    request: _Request
    slot: int
    ids: list[list[int]] = field(default_factory=list)  # per family, filled by prepare

    @property
    def cost(self) -> int:
        return max(len(i) for i in self.ids)


Outcome = tuple[_Entry, Result | Exception]

# Texts tokenized per call while the models run: large enough to amortise the call, small enough
# that a batch cut is never held up long behind tokenization (256 tweets take a few ms).
TOKENIZE_CHUNK = 256


@dataclass
class _Batch:
    entries: list[_Entry]
    texts: list[str]  # unique texts
    row_of_entry: list[int]
    ids: list[list[list[int]]]  # [family][row] -> token ids
    dropped: list[Outcome]


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
        self.ready = False
        self.accepting = True
        self.refusals: Counter[str] = Counter()  # reason -> requests refused at admission
        self._overload_logged_at = 0.0

        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending = 0  # texts admitted, not yet answered; touched on the event loop only
        self._queue: deque[_Entry] = deque()
        self._untokenized: deque[_Entry] = deque()  # queued entries the prepare thread has not seen
        self._wakeup = threading.Condition()  # guards the two deques and the flags below
        self._compute_free = False  # the compute thread waits for a batch
        self._channel: queue.Queue[_Batch | None] = queue.Queue(maxsize=1)
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._idle = asyncio.Event()

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Bind to the running event loop and start the two worker threads."""
        self._loop = asyncio.get_running_loop()
        self._idle.set()
        for target, name in ((self._prepare_loop, "prepare"), (self._compute_loop, "compute")):
            thread = threading.Thread(target=target, name=f"engine-{name}", daemon=True)
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
        """Stop the threads; anything still queued is answered ``ShuttingDown``. Blocking: call
        it from a worker thread (answers go back to the event loop like any batch's)."""
        self.accepting = False
        with self._wakeup:
            self._stopping = True
            leftovers = list(self._queue)
            self._queue.clear()
            self._untokenized.clear()
            self._wakeup.notify_all()
        if leftovers:
            shutting = ShuttingDown("the service is shutting down")
            self._loop_call(self._deliver, [(e, shutting) for e in leftovers])
        for thread in self._threads:
            thread.join(timeout=30)

    # ---- the entry point ---------------------------------------------------------------------

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
            raise NotReady("models are still loading")
        if not texts:
            return []
        if self._pending + len(texts) > self.limits.queue_texts:
            self._refuse_overloaded()
        assert self._loop is not None, "Engine.start() was not called"
        future: asyncio.Future[list[Result]] = self._loop.create_future()
        request = _Request(len(texts), future, deadline, origin)
        entries = [_Entry(text, request, i) for i, text in enumerate(texts)]
        self._pending += len(entries)
        self._idle.clear()
        with self._wakeup:
            self._queue.extend(entries)
            self._untokenized.extend(entries)
            self._wakeup.notify()
        try:
            return await future
        except asyncio.CancelledError:
            request.cancelled = True  # the prepare thread drops its entries before compute
            raise

    def _refuse_overloaded(self) -> None:
        self.refusals["overloaded"] += 1
        now = time.monotonic()
        if now - self._overload_logged_at >= 1.0:  # one line per second, not one per refusal
            self._overload_logged_at = now
            log.warning(
                "overloaded: refusing requests",
                extra={
                    "queued_texts": self._pending,
                    "queue_texts": self.limits.queue_texts,
                    "refused_total": self.refusals["overloaded"],
                },
            )
        raise Overloaded(f"queue full ({self._pending} texts waiting); retry later")

    @property
    def queued_texts(self) -> int:
        return self._pending

    # ---- prepare thread ------------------------------------------------------------------------

    def _prepare_loop(self) -> None:
        while True:
            work = self._next_work()
            if work is None:
                self._channel.put(None)
                return
            cut, entries = work
            if cut:
                self._channel.put(self._assemble(entries))
            else:
                self._tokenize([e for e in entries if not e.ids and not e.request.cancelled])

    def _next_work(self) -> tuple[bool, list[_Entry]] | None:
        """Block until there is work: (True, entries to cut a batch from) when the compute thread
        is free, else (False, entries to tokenize ahead); None when stopping."""
        limits = self.limits
        with self._wakeup:
            while True:
                if self._stopping:
                    return None
                if self._compute_free and self._queue:
                    grow_until = time.monotonic() + limits.max_wait_s
                    while (
                        len(self._queue) < limits.max_batch_texts
                        and not self._stopping
                        and (left := grow_until - time.monotonic()) > 0
                    ):
                        self._wakeup.wait(left)  # under load: let the batch grow a little
                    n = min(len(self._queue), limits.max_batch_texts)
                    self._compute_free = False
                    return True, [self._queue.popleft() for _ in range(n)]
                if self._untokenized:
                    n = min(len(self._untokenized), TOKENIZE_CHUNK)
                    return False, [self._untokenized.popleft() for _ in range(n)]
                self._wakeup.wait()

    def _assemble(self, candidates: list[_Entry]) -> _Batch:
        """Take what fits the budget from ``candidates`` (the rest goes back to the front of the
        queue). Entries dropped here (client gone, deadline passed) travel with the batch, which
        may then have nothing to compute: the compute thread answers and reports them like any
        other."""
        live, dropped = self._drop_gone(candidates)
        self._tokenize([e for e in live if not e.ids])
        taken, rest = batching.take_within_budget(
            live, self.limits.max_batch_texts, self.limits.max_batch_tokens
        )
        if rest:
            with self._wakeup:
                self._queue.extendleft(reversed(rest))
        texts, row_of_entry = batching.dedupe([e.text for e in taken])
        first: dict[int, _Entry] = {}
        for entry, row in zip(taken, row_of_entry, strict=True):
            first.setdefault(row, entry)
        ids = [[first[r].ids[f] for r in range(len(texts))] for f in range(len(self.families))]
        return _Batch(taken, texts, row_of_entry, ids, dropped)

    def _drop_gone(self, entries: list[_Entry]) -> tuple[list[_Entry], list[Outcome]]:
        now = time.monotonic()
        live: list[_Entry] = []
        dropped: list[Outcome] = []
        for e in entries:
            r = e.request
            if r.cancelled:
                dropped.append((e, DeadlineExceeded("client went away")))
            elif r.deadline is not None and now >= r.deadline:
                dropped.append((e, DeadlineExceeded("deadline passed before compute")))
            else:
                live.append(e)
        return live, dropped

    def _tokenize(self, entries: list[_Entry]) -> None:
        if not entries:
            return
        texts = [e.text for e in entries]
        per_family = [family.encode(texts) for family in self.families]
        for i, entry in enumerate(entries):
            entry.ids = [ids[i] for ids in per_family]

    # ---- compute thread ------------------------------------------------------------------------

    def _compute_loop(self) -> None:
        trimmer = HeapTrimmer()
        while True:
            with self._wakeup:
                self._compute_free = True  # cut the next batch from what is queued now
                idle = not self._queue
                self._wakeup.notify()
            trimmer.maybe_trim(idle=idle)
            batch = self._channel.get()
            if batch is None:
                return
            try:
                self._compute(batch)
            except Exception:  # never let the thread die: that would strand every request
                log.exception("batch bookkeeping failed")
                self._loop_call(
                    self._deliver,
                    [
                        (e, ModelFailure("internal error while computing the batch"))
                        for e in batch.entries
                    ],
                )

    def _compute(self, batch: _Batch) -> None:
        start = time.perf_counter()
        # a client may have left, or a deadline passed, while the batch waited for the models
        live, late = self._drop_gone(batch.entries)
        outcomes: list[Outcome] = batch.dropped + late
        live_ids = {id(e) for e in live}
        live_rows = [
            r for e, r in zip(batch.entries, batch.row_of_entry, strict=True) if id(e) in live_ids
        ]
        needed = sorted(set(live_rows))
        rows, seconds, stats = self._compute_rows(batch, needed)
        outcomes += [(e, rows[r]) for e, r in zip(live, live_rows, strict=True)]
        report = BatchReport(
            texts=len(live),
            unique_texts=len(needed),
            tokens=sum(max(len(ids[r]) for ids in batch.ids) for r in needed),
            padded_tokens=stats[1],
            forward_calls=stats[0],
            origins=Counter(e.request.origin for e in live),
            compute_s=time.perf_counter() - start,
            model_seconds=dict(zip(self.keys, seconds, strict=True)),
            failed_texts=sum(isinstance(r, Exception) for r in rows.values()),
            dropped_texts=len(outcomes) - len(live),
        )
        # Observers run before delivery, so a batch's report exists by the time any of its clients
        # has an answer (metrics and tests rely on that). A failing observer costs no answer.
        for observer in self.observers:
            try:
                observer(report)
            except Exception:
                log.exception("batch observer failed")
        self._loop_call(self._deliver, outcomes)

    def _compute_rows(
        self, batch: _Batch, rows: list[int]
    ) -> tuple[dict[int, Result | Exception], list[float], tuple[int, int]]:
        """Results for ``rows`` (unique texts); on failure split in halves and retry, so only a
        text that fails alone gets an error. Returns (results, per-model seconds, (calls, padded
        tokens))."""
        if not rows:
            return {}, [0.0] * len(self.models), (0, 0)
        try:
            work, calls, padded = self._plan(batch, rows)
            out, seconds = self.runner.run(work, len(rows))
        except Exception as exc:
            if isinstance(exc, torch.cuda.OutOfMemoryError):
                torch.cuda.empty_cache()
            if len(rows) == 1:
                log.error("model failure on one text", extra={"error": repr(exc)})
                return (
                    {rows[0]: ModelFailure(f"a model failed on this text: {exc}")},
                    [0.0] * len(self.models),
                    (0, 0),
                )
            half = len(rows) // 2
            a = self._compute_rows(batch, rows[:half])
            b = self._compute_rows(batch, rows[half:])
            return (
                {**a[0], **b[0]},
                [x + y for x, y in zip(a[1], b[1], strict=True)],
                (a[2][0] + b[2][0], a[2][1] + b[2][1]),
            )
        return self._merge(out, rows), seconds, (calls, padded)

    def _plan(self, batch: _Batch, rows: list[int]) -> tuple[list[FamilyWork], int, int]:
        """Forward calls per family for the given rows; the runner's rows are 0..len(rows)-1."""
        work = []
        n_calls = padded = 0
        for f, family in enumerate(self.families):
            seqs = [batch.ids[f][r] for r in rows]
            groups = batching.plan_micro_batches(
                [len(s) for s in seqs], self.limits.micro_batch_tokens, self.limits.max_batch_texts
            )
            calls = [_forward_call(seqs, group, family.pad_id) for group in groups]
            n_calls += len(calls)
            padded += sum(c.input_ids.numel() for c in calls)
            work.append(FamilyWork(family.members, calls))
        return work, n_calls, padded

    def _merge(self, out: np.ndarray, rows: list[int]) -> dict[int, Result | Exception]:
        """Per text, one dict in the configured key order."""
        merged: dict[int, Result | Exception] = {}
        labels = [m.labels for m in self.models]
        for local, row in enumerate(rows):
            merged[row] = {
                key: Prediction(float(out[m, local, 1]), labels[m][int(out[m, local, 0])])
                for m, key in enumerate(self.keys)
            }
        return merged

    # ---- back on the event loop --------------------------------------------------------------

    def _loop_call(self, fn: Callable[[list[Outcome]], None], arg: list[Outcome]) -> None:
        assert self._loop is not None
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn, arg)

    def _deliver(self, outcomes: list[Outcome]) -> None:
        """Runs on the event loop, once per batch: settle every request whose texts are done."""
        for entry, outcome in outcomes:
            self._pending -= 1
            request = entry.request
            if request.future.done():
                continue
            if isinstance(outcome, Exception):
                request.future.set_exception(outcome)
                request.cancelled = True  # its other texts need no compute now
                continue
            request.results[entry.slot] = outcome
            request.remaining -= 1
            if request.remaining == 0:
                request.future.set_result(request.results)  # type: ignore[arg-type]
        if self._pending == 0:
            self._idle.set()


def _forward_call(seqs: list[list[int]], group: list[int], pad_id: int) -> ForwardCall:
    longest = max(len(seqs[i]) for i in group)
    ids = np.full((len(group), longest), pad_id, dtype=np.int64)
    mask = np.zeros((len(group), longest), dtype=np.int64)
    for j, i in enumerate(group):
        ids[j, : len(seqs[i])] = seqs[i]
        mask[j, : len(seqs[i])] = 1
    return ForwardCall(group, torch.from_numpy(ids), torch.from_numpy(mask))
