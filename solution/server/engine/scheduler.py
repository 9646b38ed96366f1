"""The engine's queue as plain state: admission, tokenization hand-out, batch cuts, completion.

No threads, no models, no clock of its own: the engine's worker loops call these methods under one
lock and pass ``now`` in, so every rule is unit-tested by driving the state by hand
(tests/server/test_scheduler.py). The shape follows text-embeddings-inference's queue and vLLM's
scheduler: entries in arrival order, each in an explicit ``State``; a batch is filled in arrival
order while its budget allows, and an entry that does not fit simply stays where it is (nothing is
taken out and pushed back); liveness (client gone, deadline passed) is applied while filling.

    QUEUED --take_for_tokenizing--> TOKENIZING --tokenized--> TOKENIZED --cut--> BATCHED
       \\____________ cancel / expire / deadline at the cut / stop / abort _________\\--> DONE
                                                                  finish(batch) --> DONE

Admission counts the texts that wait (queued, tokenizing or tokenized); a text leaves the budget
when a batch takes it, when its client leaves or its deadline passes, or when the service stops.

Tokenization has two lanes: texts of ordinary length are tokenized in chunks, and the cut waits
for those admitted before the compute thread became free (they take milliseconds, and leaving them
out splits closed-loop clients into alternating batches). Long texts go to their own lane, one at a
time, and no cut ever waits for them, so one huge text never holds up anybody else's batch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from solution.server.compute import batching
from solution.server.engine.entries import (
    LONG_TEXT_CHARS,
    TOKENIZE_CHUNK_CHARS,
    TOKENIZE_CHUNK_TEXTS,
    Batch,
    Cut,
    Entry,
    Lane,
    Outcome,
    Snapshot,
    State,
    Submission,
)
from solution.server.engine.limits import BatchingLimits
from solution.server.errors import (
    DeadlineExceeded,
    NotReady,
    Overloaded,
    ServiceError,
    ShuttingDown,
)


class Scheduler:
    def __init__(self, limits: BatchingLimits, n_families: int):
        self.limits = limits
        self.n_families = n_families
        self._waiting: dict[Entry, None] = {}  # queued/tokenizing/tokenized, in arrival order
        self._computing: dict[Entry, None] = {}  # the batch in hand
        self._seq = 0
        self._free_since: float | None = None  # when the compute thread last asked for work
        self._watermark = 0  # short-lane entries up to this seq are waited for at the cut
        # Admission state: warming up (only the warm-up is admitted), ready, then closed for
        # good (drain) and stopped (no more cuts either).
        self.ready = False
        self.accepting = True
        self.stopped = False
        self.refused: Counter[str] = Counter()  # reason -> submissions refused at admission
        self.dropped: Counter[str] = Counter()  # reason -> texts that left without being computed

    # ---- counts ---------------------------------------------------------------------------------

    @property
    def waiting_texts(self) -> int:
        """Texts admitted and not yet in a batch (what the admission budget counts)."""
        return len(self._waiting)

    @property
    def computing_texts(self) -> int:
        return len(self._computing)

    @property
    def idle(self) -> bool:
        """Nothing waits and nothing computes."""
        return not self._waiting and not self._computing

    def snapshot(self) -> Snapshot:
        return Snapshot(
            self.ready,
            self.accepting,
            len(self._waiting),
            len(self._computing),
            dict(self.dropped),
            dict(self.refused),
        )

    def states(self) -> list[State]:
        """The waiting entries' states in arrival order."""
        return [e.state for e in self._waiting]

    # ---- admission (event loop) ------------------------------------------------------------------

    def open(self) -> None:
        """Warm-up is done: clients are admitted (unless a drain began meanwhile)."""
        self.ready = self.accepting

    def close(self) -> None:
        """A drain began: nothing new is admitted; what is queued is still computed."""
        self.accepting = self.ready = False

    def admit(self, submission: Submission, texts: Sequence[str]) -> list[Entry]:
        """Queue every text of ``submission``, or none. The one admission check of the service:
        ``ShuttingDown`` once closed or stopped, ``NotReady`` before warm-up (which is admitted),
        ``Overloaded`` when the texts do not fit the queue; each refusal is counted by reason."""
        refusal: ServiceError | None = None
        if self.stopped or not self.accepting:
            refusal = ShuttingDown("the service is shutting down")
        elif not self.ready and submission.origin != "warmup":
            refusal = NotReady()
        elif len(self._waiting) + len(texts) > self.limits.queue_texts:
            refusal = Overloaded(f"queue full ({len(self._waiting)} texts waiting); retry later")
        if refusal is not None:
            reason = {ShuttingDown: "shutting_down", NotReady: "not_ready"}.get(
                type(refusal), "overloaded"
            )
            self.refused[reason] += 1
            raise refusal
        entries = []
        for slot, text in enumerate(texts):
            self._seq += 1
            lane = Lane.LONG if len(text) > LONG_TEXT_CHARS else Lane.SHORT
            entry = Entry(text, submission, slot, self._seq, lane)
            self._waiting[entry] = None
            entries.append(entry)
        submission.entries = entries
        return entries

    def cancel(self, request: Submission) -> int:
        """The client left: its waiting texts leave the queue and the budget at once. Returns how
        many were dropped; texts already computing finish and are discarded by the owner."""
        request.gone = True
        return len(self._drop_waiting(request, "client_gone"))

    def expire(self, request: Submission) -> bool:
        """The request's deadline passed: drop its waiting texts. True when any of them had not
        reached a batch (the request can then never complete, and should be answered
        ``DeadlineExceeded``); a text being tokenized is dropped when its ids arrive."""
        request.gone = True
        tokenizing = any(e.state is State.TOKENIZING for e in request.entries)
        return bool(self._drop_waiting(request, "deadline")) or tokenizing

    def _drop_waiting(self, request: Submission, reason: str) -> list[Entry]:
        """Waiting entries of ``request`` leave the queue. A tokenizing entry stays until its
        tokenizer returns (``tokenized`` drops it then, as ``request.gone`` is set)."""
        dropped = [
            e for e in request.entries if e in self._waiting and e.state is not State.TOKENIZING
        ]
        for e in dropped:
            self._done(e)
        if dropped:
            self.dropped[reason] += len(dropped)
        return dropped

    # ---- tokenizer threads ---------------------------------------------------------------------

    def take_for_tokenizing(self, lane: Lane) -> list[Entry]:
        """The next entries for a tokenizer of ``lane``: a chunk in arrival order for the short
        lane, one text for the long lane; empty when there is nothing to do."""
        taken: list[Entry] = []
        chars = 0
        for e in self._waiting:
            if e.state is not State.QUEUED or e.lane is not lane:
                continue
            if taken and (
                lane is Lane.LONG
                or len(taken) >= TOKENIZE_CHUNK_TEXTS
                or chars + len(e.text) > TOKENIZE_CHUNK_CHARS
            ):
                break
            e.state = State.TOKENIZING
            taken.append(e)
            chars += len(e.text)
        return taken

    def tokenized(
        self, entries: Sequence[Entry], ids: Sequence[list[list[int]] | ServiceError]
    ) -> list[Outcome]:
        """Record a tokenizer's work: per entry its ids per family, or the error that entry gets.
        Entries whose request went away meanwhile are dropped. Returns outcomes to deliver."""
        outcomes: list[Outcome] = []
        for entry, result in zip(entries, ids, strict=True):
            if entry.state is not State.TOKENIZING:
                continue  # stopped or aborted meanwhile: already answered
            if entry.submission.gone:
                self._done(entry)
                self.dropped["client_gone"] += 1
            elif isinstance(result, ServiceError):
                self._done(entry)
                outcomes.append((entry, result))
                entry.submission.gone = True
                self._drop_waiting(entry.submission, "request_failed")
            else:
                entry.ids = result
                entry.state = State.TOKENIZED
        return outcomes

    # ---- the compute thread ----------------------------------------------------------------------

    def cut(self, now: float) -> Cut:
        """Decide the next batch. Called whenever the compute thread is free (and again when it is
        woken); it waits for short texts admitted before it became free, and for ``max_wait_s``
        when that is set, but never for the long lane."""
        limits = self.limits
        dropped = self._drop_expired(now)
        if not self._waiting:
            return Cut(None, dropped)
        if self._free_since is None:  # the first look at a non-empty queue since the last cut
            self._free_since = now
            self._watermark = self._seq
        grow_until = self._free_since + limits.max_wait_s
        if now < grow_until and len(self._waiting) < limits.max_batch_texts:
            self._watermark = self._seq  # while growing, later arrivals are waited for too
            return Cut(None, dropped, grow_until - now)

        taken: list[Entry] = []
        tokens = 0
        for e in self._waiting:
            if e.state is not State.TOKENIZED:
                if e.lane is Lane.SHORT and e.seq <= self._watermark:
                    return Cut(None, dropped)  # a few milliseconds away: wait for the tokenizer
                continue  # a long text, or one that arrived after the cut began: next batch
            if taken and (
                len(taken) >= limits.max_batch_texts or tokens + e.cost > limits.max_batch_tokens
            ):
                break  # it stays first in line for the next batch
            taken.append(e)
            tokens += e.cost
        if not taken:
            return Cut(None, dropped)
        for e in taken:
            del self._waiting[e]
            e.state = State.BATCHED
            self._computing[e] = None
        self._free_since = None
        return Cut(self._assemble(taken), dropped)

    def _drop_expired(self, now: float) -> list[Outcome]:
        expired = [
            e
            for e in self._waiting
            if e.state is not State.TOKENIZING
            and e.submission.deadline is not None
            and now >= e.submission.deadline
        ]
        errors: dict[int, ServiceError] = {}
        outcomes: list[Outcome] = []
        if expired:
            self.dropped["deadline"] += len(expired)
        for e in expired:
            self._done(e)
            error = errors.setdefault(
                id(e.submission), DeadlineExceeded("deadline passed before compute")
            )
            outcomes.append((e, error))
        return outcomes

    def _assemble(self, taken: list[Entry]) -> Batch:
        texts, row_of_entry = batching.dedupe([e.text for e in taken])
        # A row's texts may want different models: the row computes the union, and its ids for a
        # family come from whichever of its texts was tokenized for that family.
        wanted: list[frozenset[int] | None] = [frozenset() for _ in texts]
        ids: list[list[list[int]]] = [[[] for _ in texts] for _ in range(self.n_families)]
        for entry, row in zip(taken, row_of_entry, strict=True):
            have, want = wanted[row], entry.submission.wanted
            wanted[row] = None if have is None or want is None else have | want
            for f in range(self.n_families):
                if entry.ids[f] and not ids[f][row]:
                    ids[f][row] = entry.ids[f]
        return Batch(taken, texts, row_of_entry, ids, wanted)

    def finish(self, batch: Batch, failed: Iterable[Entry] = ()) -> None:
        """The batch's answers are out. A request with a failed text needs none of its others."""
        for e in batch.entries:
            if e in self._computing:  # not already answered by an abort
                del self._computing[e]
                e.state = State.DONE
        for e in failed:
            e.submission.gone = True
            self._drop_waiting(e.submission, "request_failed")

    # ---- the end ---------------------------------------------------------------------------------

    def stop(self) -> list[Outcome]:
        """No more admissions or cuts; every waiting text is answered ``ShuttingDown``. A batch in
        hand still finishes."""
        self.stopped = True
        self.close()
        outcomes = self._answer_waiting(lambda: ShuttingDown("the service is shutting down"))
        if outcomes:
            self.dropped["shutting_down"] += len(outcomes)
        return outcomes

    def abort(self, error: type[ServiceError], message: str) -> list[Outcome]:
        """A worker died: every text the scheduler holds, computing ones included, gets ``error``
        (one exception object per request)."""
        self.stopped = True
        self.close()
        outcomes = self._answer_waiting(lambda: error(message), include_computing=True)
        if outcomes:
            self.dropped["aborted"] += len(outcomes)
        return outcomes

    def _answer_waiting(
        self, make: Callable[[], ServiceError], include_computing: bool = False
    ) -> list[Outcome]:
        held = list(self._waiting) + (list(self._computing) if include_computing else [])
        errors: dict[int, ServiceError] = {}
        outcomes: list[Outcome] = []
        for e in held:
            self._done(e)
            outcomes.append((e, errors.setdefault(id(e.submission), make())))
        return outcomes

    def _done(self, entry: Entry) -> None:
        self._waiting.pop(entry, None)
        self._computing.pop(entry, None)
        entry.state = State.DONE
