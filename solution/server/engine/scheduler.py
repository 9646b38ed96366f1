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

Fair share between clients, and the lower class of closed connections: ``shares.py``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from solution.server.compute import batching
from solution.server.engine import shares
from solution.server.engine.entries import (
    CLOSED_BATCH_SHARE,
    LONG_TEXT_CHARS,
    TOKENIZE_CHUNK_CHARS,
    TOKENIZE_CHUNK_TEXTS,
    Batch,
    Client,
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
        self._by_client: dict[str, dict[Entry, None]] = {}  # the same, per client key
        self._closed: dict[Client, int] = {}  # how many of them each closed connection holds
        # not yet tokenized: what the tokenizers take from, and what a cut may wait for
        self._queued: dict[Lane, dict[Entry, None]] = {lane: {} for lane in Lane}
        self._tokenizing: dict[Entry, None] = {}
        # the batches in hand: the one computing and, on CUDA, the next one staged behind it
        self._computing: dict[Entry, None] = {}
        self._seq = 0
        self._free_since: float | None = None  # when the compute thread first asked for work
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
            self.waiting_by_class(),
        )

    def waiting_by_class(self) -> dict[str, int]:
        """Waiting texts of live clients and of closed connections (the metrics' queue depth)."""
        closed = sum(self._closed.values())
        return {"live": len(self._waiting) - closed, "closed": closed}

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

    def client_closed(self, client: Client) -> None:
        """``client``'s connection closed its side: its waiting texts become the lower class
        (tokenized and batched after every live client's, shed first)."""
        if client.closed:
            return
        client.closed = True
        held = sum(1 for e in self._by_client.get(client.key, ()) if e.submission.client is client)
        if held:
            self._closed[client] = held

    def admit(self, submission: Submission, texts: Sequence[str]) -> list[Outcome]:
        """Queue every text of ``submission``, or none. The one admission check of the service:
        ``ShuttingDown`` once closed or stopped, ``NotReady`` before warm-up (which is admitted),
        ``Overloaded`` when the texts do not fit the queue and no heavier client's (or closed
        connection's) submissions can make room; each refusal is counted by reason. Returns the
        shed submissions' answers (one ``Overloaded`` each, counted "shed"), for the owner to
        deliver."""
        refusal: ServiceError | None = None
        shed: list[Submission] = []
        need = len(self._waiting) + len(texts) - self.limits.queue_texts
        if self.stopped or not self.accepting:
            refusal = ShuttingDown("the service is shutting down")
        elif not self.ready and submission.origin != "warmup":
            refusal = NotReady()
        elif need > 0:
            room = shares.make_room(
                self._by_client, self._closed, submission.client, len(texts), need
            )
            if room is None:
                waiting = len(self._waiting)
                refusal = Overloaded(f"queue full ({waiting} texts waiting); retry later")
            shed = room or []
        if refusal is not None:
            reason = {ShuttingDown: "shutting_down", NotReady: "not_ready"}.get(
                type(refusal), "overloaded"
            )
            self.refused[reason] += 1
            raise refusal
        outcomes = [self._shed(s) for s in shed]
        if outcomes:
            self.refused["shed"] += len(outcomes)
        queue = self._by_client.setdefault(submission.client.key, {})
        entries = []
        for slot, text in enumerate(texts):
            self._seq += 1
            lane = Lane.LONG if len(text) > LONG_TEXT_CHARS else Lane.SHORT
            entry = Entry(text, submission, slot, self._seq, lane)
            self._waiting[entry] = None
            queue[entry] = None
            self._queued[lane][entry] = None
            entries.append(entry)
        submission.entries, submission.held = entries, len(entries)
        if submission.client.closed:
            self._closed[submission.client] = self._closed.get(submission.client, 0) + len(entries)
        return outcomes

    def _shed(self, submission: Submission) -> Outcome:
        """Drop a submission's waiting texts to make room; it is answered ``Overloaded``."""
        submission.gone = True
        first = submission.entries[0]
        reason = "client_gone" if submission.client.closed else "shed"
        self._drop_waiting(submission, reason)
        return first, Overloaded("shed to make room for a lighter client; retry later")

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
        """The next entries for a tokenizer of ``lane``: a chunk taken from the clients in turn
        (live ones first, closed connections' last) for the short lane, one text for the long
        lane; empty when there is nothing to do."""
        queued = self._queued[lane]
        if not queued:
            return []
        lines: dict[str, list[Entry]] = {}  # in the order of each client's oldest queued text
        closed: list[Entry] = []
        for e in queued:
            if e.submission.client.closed:
                closed.append(e)
            else:
                lines.setdefault(e.submission.client.key, []).append(e)
        taken: list[Entry] = []
        chars = 0
        for e in [*shares.in_turn(lines.values()), *closed]:
            if taken and (
                lane is Lane.LONG
                or len(taken) >= TOKENIZE_CHUNK_TEXTS
                or chars + len(e.text) > TOKENIZE_CHUNK_CHARS
            ):
                break
            taken.append(e)
            chars += len(e.text)
        for e in taken:
            del queued[e]
            self._tokenizing[e] = None
            e.state = State.TOKENIZING
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
                del self._tokenizing[entry]
        return outcomes

    # ---- the compute thread ----------------------------------------------------------------------

    def cut(self, now: float) -> Cut:
        """Decide the next batch. Called whenever the compute thread is free (and again when it is
        woken); it waits for short texts admitted before it became free, and for ``max_wait_s``
        when that is set, but never for the long lane. On CUDA the compute thread also looks once
        right after a launch, to stage the next batch while that one computes; it takes a batch
        only if one is cut at once, but such a look starts the wait like any other (the thread
        could take work from then on), and the batch cut after the launched one counts from it.
        Any number of cut batches may be in hand: each leaves with its own ``finish``."""
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

        if any(
            e.lane is Lane.SHORT and e.seq <= self._watermark and not e.submission.client.closed
            for untokenized in (self._queued[Lane.SHORT], self._tokenizing)
            for e in untokenized
        ):
            return Cut(None, dropped)  # a few milliseconds away: wait for the tokenizer
        tokens = limits.max_batch_tokens
        taken = shares.fill(self._by_client, False, limits.max_batch_texts, tokens)
        if not taken:  # closed connections' texts, only when no live client's is ready
            closed_texts = max(1, limits.max_batch_texts // CLOSED_BATCH_SHARE)
            taken = shares.fill(self._by_client, True, closed_texts, tokens)
        if not taken:
            return Cut(None, dropped)
        for e in taken:
            self._unqueue(e)
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
        """The batch's answers are out. A request with a failed text needs none of its others
        that wait (those in another batch in hand are computed, and their answers discarded)."""
        for e in batch.entries:
            if e in self._computing:  # not already answered by an abort
                del self._computing[e]
                _retire(e)
        for e in failed:
            e.submission.gone = True
            self._drop_waiting(e.submission, "request_failed")

    # ---- the end ---------------------------------------------------------------------------------

    def stop(self) -> list[Outcome]:
        """No more admissions or cuts; every waiting text is answered ``ShuttingDown``. Batches in
        hand (the one computing, and one staged behind it) still finish."""
        self.stopped = True
        self.close()
        outcomes = self._answer_waiting(lambda: ShuttingDown("the service is shutting down"))
        if outcomes:
            self.dropped["shutting_down"] += len(outcomes)
        return outcomes

    def abort(self, error: type[ServiceError], message: str) -> list[Outcome]:
        """A worker died: every text the scheduler holds, those of every batch in hand included,
        gets ``error`` (one exception object per request)."""
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
        if entry in self._waiting:
            self._unqueue(entry)
        self._computing.pop(entry, None)
        _retire(entry)

    def _unqueue(self, entry: Entry) -> None:
        del self._waiting[entry]
        self._queued[entry.lane].pop(entry, None)
        self._tokenizing.pop(entry, None)
        client = entry.submission.client
        queue = self._by_client[client.key]
        del queue[entry]
        if not queue:
            del self._by_client[client.key]
        if client in self._closed:
            self._closed[client] -= 1
            if not self._closed[client]:
                del self._closed[client]


def _retire(entry: Entry) -> None:
    """``entry`` is no longer the scheduler's; the last of its submission's lets go of the
    submission's list of entries, so that refcounting frees both (``Submission.entries``)."""
    if entry.state is State.DONE:
        return
    entry.state = State.DONE
    submission = entry.submission
    submission.held -= 1
    if not submission.held:
        submission.entries = []
