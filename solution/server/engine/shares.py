"""Fair share as pure functions over the scheduler's waiting entries: which entries a tokenizer
chunk and a batch take (clients in turn), and which submissions are shed to make room. They read
the scheduler's indexes and change nothing; the state and its changes stay in ``scheduler.py``.

Every submission names its ``Client`` (a connection by default, or the client id the request
carries). Tokenizing and each batch take from the clients in turn, oldest waiting first, so a
client with one text waiting gets it into the next batch however much another has queued. When the
queue is full, a newcomer's room is made by shedding the newest submissions of whichever client
holds most, as long as that client holds more than the newcomer would (the heavy client is refused
first, not the light one); a client that is itself the heaviest is refused.

Gone clients cost nothing: a client whose connection closed its side (``Client.closed``; a FIN may
be a deliberate half-close or a client that has left, and which is not known until an answer is
written) is a lower class. Its texts are tokenized and batched only when no live client's text
waits, in small batches (``CLOSED_BATCH_SHARE``), and are the first shed when room is needed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping

from solution.server.engine.entries import Client, Entry, State, Submission

Queue = dict[Entry, None]  # entries in arrival order (a dict used as an ordered set)


def in_turn(lines: Iterable[Iterable[Entry]]) -> Iterator[Entry]:
    """One entry from each line in turn, until every line is spent."""
    turns = deque(iter(line) for line in lines)
    while turns:
        line = turns.popleft()
        e = next(line, None)
        if e is not None:
            turns.append(line)
            yield e


def fill(
    by_client: Mapping[str, Queue], closed: bool, max_texts: int, max_tokens: int
) -> list[Entry]:
    """A batch's tokenized entries of one class, one client's at a time in turn, while the budget
    allows; a client whose next text does not fit gives none more to this batch (that text stays
    first in its line for the next)."""
    taken: list[Entry] = []
    tokens = 0
    full: set[str] = set()
    queues = sorted(by_client.values(), key=lambda q: next(iter(q)).seq)
    ready = (
        (e for e in q if e.state is State.TOKENIZED and e.submission.client.closed is closed)
        for q in queues
    )
    for e in in_turn(ready):
        key = e.submission.client.key
        if key in full:
            continue
        if taken and tokens + e.cost > max_tokens:
            full.add(key)
            continue
        taken.append(e)
        tokens += e.cost
        if len(taken) >= max_texts:
            break
    return taken


def make_room(
    by_client: Mapping[str, Queue],
    closed: Mapping[Client, int],
    client: Client,
    size: int,
    need: int,
) -> list[Submission] | None:
    """The submissions to shed so that ``need`` more texts fit: closed connections' first, then
    the newest of whichever client holds most, while it holds more than ``client`` would and
    still as much without the submission shed (one huge submission is not shed for a small one).
    None (shed nothing) when that cannot free enough.

    ``closed`` is the waiting texts per closed connection (the scheduler's index, so that none
    is found by a scan of the queue). A flood is refused by the thousand, so the usual refusal
    (nothing closed waits, and no other client holds more than ``client`` would) costs a few
    passes over the clients and nothing else."""
    if client.closed:
        return None
    mine = len(by_client.get(client.key, ())) + size
    plan: list[Submission] = []
    seen: set[int] = set()
    for gone in list(closed):  # closed connections' submissions, each one's newest first
        for e in reversed(by_client.get(gone.key, {})):
            if need <= 0:
                return plan
            if e.submission.client is gone and id(e.submission) not in seen:
                seen.add(id(e.submission))
                plan.append(e.submission)
                need -= sheddable(e.submission)
    if need <= 0:
        return plan
    held_by_key = {key: len(queue) for key, queue in by_client.items()}
    for planned in plan:
        held_by_key[planned.client.key] -= sum(1 for e in planned.entries if _waits(e))
    newest = {key: reversed(queue) for key, queue in by_client.items()}
    while need > 0:
        key = max(held_by_key, key=held_by_key.__getitem__, default=None)
        if key is None or key == client.key or held_by_key[key] <= mine:
            return None
        for e in newest[key]:  # its newest submission not yet planned
            if id(e.submission) not in seen and not e.submission.client.closed:
                break
        else:
            return None
        held_by_key[key] -= sum(1 for x in e.submission.entries if _waits(x))
        if held_by_key[key] < mine:  # shedding it would make the heavy client the lighter one
            return None
        seen.add(id(e.submission))
        plan.append(e.submission)
        need -= sheddable(e.submission)
    return plan


def _waits(entry: Entry) -> bool:
    """The entry is in the queue (admitted, not yet in a batch or done)."""
    return entry.state in (State.QUEUED, State.TOKENIZING, State.TOKENIZED)


def sheddable(submission: Submission) -> int:
    """Texts shedding ``submission`` frees now: its waiting ones a tokenizer does not hold."""
    return sum(1 for e in submission.entries if e.state in (State.QUEUED, State.TOKENIZED))
