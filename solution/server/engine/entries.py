"""What the scheduler moves through its states: a client's ``Submission``, one ``Entry`` per
text, the ``Batch`` a cut makes, and the views it hands out (``Cut``, ``Snapshot``). Plain data,
no rules: those are ``scheduler.py``'s."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class State(enum.Enum):
    QUEUED = "queued"  # admitted, not yet handed to a tokenizer
    TOKENIZING = "tokenizing"  # a tokenizer thread holds it
    TOKENIZED = "tokenized"  # ids known, waiting for a batch
    BATCHED = "batched"  # in a batch in hand: being computed, or staged to be next
    DONE = "done"  # answered, dropped or refused: no longer the scheduler's


class Lane(enum.Enum):
    SHORT = "short"
    LONG = "long"


# A text longer than this many characters is tokenized in the long lane. A tweet is at most a few
# hundred characters; 4096 characters cover 512 tokens of almost any text, so the short lane's work
# per text stays within a millisecond or two, while a megabyte-sized text can take a second.
LONG_TEXT_CHARS = 4096
# One short-lane tokenizer call: enough texts to amortise the call, few enough characters that a
# waiting cut is held up by a few milliseconds at most.
TOKENIZE_CHUNK_TEXTS = 256
TOKENIZE_CHUNK_CHARS = 64 * 1024
# A batch of texts from closed connections holds at most this share of ``max_batch_texts``: a live
# client arriving while it computes waits for it, so it is kept to a few milliseconds of work.
CLOSED_BATCH_SHARE = 16


@dataclass(eq=False)
class Client:
    """Who sent a request. ``key`` is what fair share counts by (one connection, or one client id
    shared by several); ``closed`` is set (under the owner's lock) when the connection closed its
    side, and moves its texts to the lower class."""

    key: str = ""
    closed: bool = False


@dataclass(eq=False)
class Submission:
    """One client request as the scheduler sees it. ``ticket`` is the owner's handle (the engine
    keeps the client's future there); the scheduler never reads it."""

    size: int
    deadline: float | None = None  # a time.monotonic() value
    origin: str = ""
    ticket: Any = None
    wanted: frozenset[int] | None = None  # model indices to compute; None: every model
    truncate: bool = True  # False: a text beyond a model's limit is refused, not cut
    client: Client = field(default_factory=Client)  # who fair share counts it for
    gone: bool = False  # the client left, or another of its texts failed: the rest need no compute
    # Its entries while the scheduler holds any of them (each entry points back here). Emptied
    # when the last is done: the pair is a reference cycle, and a request that waited long enough
    # to reach the oldest GC generation would otherwise keep its texts, ids and answers until a
    # full collection (beside a flood, +200 MiB of RSS that fragmentation then kept).
    entries: list[Entry] = field(default_factory=list)
    held: int = 0  # how many of ``entries`` are not yet done


@dataclass(eq=False)
class Entry:
    """One text of a request, the unit the scheduler moves through its states."""

    text: str
    submission: Submission
    slot: int  # position of the text in its request
    seq: int  # arrival order over all entries
    lane: Lane
    state: State = State.QUEUED
    ids: list[list[int]] = field(default_factory=list)  # per tokenizer family, once tokenized

    @property
    def cost(self) -> int:
        """Tokens this text adds to a batch: its longest tokenization."""
        return max((len(i) for i in self.ids), default=0)

    # what the tokenizer needs to know (``compute.families.Text``)
    wanted = property(lambda self: self.submission.wanted)
    truncate = property(lambda self: self.submission.truncate)
    name = property(lambda self: f"text {self.slot}" if self.submission.size > 1 else "the text")


Outcome = tuple[Entry, Any]  # an entry and its answer: a result, or a ServiceError


@dataclass
class Batch:
    """What the compute thread runs: entries, deduplicated into rows."""

    entries: list[Entry]
    texts: list[str]  # unique texts, one row each
    row_of_entry: list[int]
    ids: list[list[list[int]]]  # [family][row] -> token ids ([] where no model of it is wanted)
    wanted: list[frozenset[int] | None]  # per row: the models its texts want (None: all)

    @property
    def warmup(self) -> bool:
        return all(e.submission.origin == "warmup" for e in self.entries)


@dataclass
class Cut:
    """The answer to "what should the compute thread do now"."""

    batch: Batch | None  # run this; None: nothing to run yet
    dropped: list[Outcome]  # entries dropped while filling (deadline passed), to answer now
    wait_s: float | None = None  # with no batch: look again after this long (None: when woken)


@dataclass(frozen=True)
class Snapshot:
    """The scheduler's counts at one moment (for readiness, metrics and tests)."""

    ready: bool
    accepting: bool
    waiting_texts: int
    computing_texts: int
    dropped: dict[str, int]  # reason -> texts that left without compute
    refused: dict[str, int]  # reason -> submissions refused at admission (or shed: "shed")
    waiting_by_class: dict[str, int] = field(default_factory=dict)  # "live"/"closed" -> texts
