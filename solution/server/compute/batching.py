"""Batch assembly as pure functions: what to take from the queue, and how to cut it into forward
calls. No model, no threads, no I/O here, so every rule is unit-tested on plain lists.

- ``take_within_budget``: arrival order, up to a text count and a token budget; the entry that
  does not fit waits for the next batch (at the front of the queue).
- ``dedupe``: identical texts in a batch are computed once.
- ``plan_micro_batches``: sort by length, then cut so that padded tokens per forward call stay
  within a budget; similar lengths share a call, which keeps padding low.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar


class Costed(Protocol):
    @property
    def cost(self) -> int: ...


C = TypeVar("C", bound=Costed)


def take_within_budget(
    candidates: Sequence[C], max_texts: int, max_tokens: int
) -> tuple[list[C], list[C]]:
    """Split ``candidates`` (in arrival order) into (taken, left for later). The first candidate is
    always taken, so a single text larger than the budget cannot block the queue."""
    taken: list[C] = []
    tokens = 0
    for i, entry in enumerate(candidates):
        if taken and (len(taken) >= max_texts or tokens + entry.cost > max_tokens):
            return taken, list(candidates[i:])
        taken.append(entry)
        tokens += entry.cost
    return taken, []


def dedupe(texts: Sequence[str]) -> tuple[list[str], list[int]]:
    """(unique texts in first-seen order, index into them for every input text)."""
    position: dict[str, int] = {}
    index = [position.setdefault(t, len(position)) for t in texts]
    return list(position), index


def plan_micro_batches(
    lengths: Sequence[int], max_padded_tokens: int, max_texts: int
) -> list[list[int]]:
    """Indices grouped into forward calls: sorted by length (longest first, so the first call
    shows the worst-case memory at once), each call's ``count x longest`` within the budget."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    calls: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        longest_if_added = max(longest, lengths[i])
        if current and (
            len(current) >= max_texts or (len(current) + 1) * longest_if_added > max_padded_tokens
        ):
            calls.append(current)
            current, longest_if_added = [], lengths[i]
        current.append(i)
        longest = longest_if_added
    if current:
        calls.append(current)
    return calls


def positions(lengths: Sequence[int], calls: Sequence[Sequence[int]]) -> tuple[int, int]:
    """(real tokens, computed positions) of the calls: each call computes ``count x longest``."""
    computed = sum(len(c) * max(lengths[i] for i in c) for c in calls if c)
    return sum(lengths[i] for c in calls for i in c), computed


def padding_ratio(lengths: Sequence[int], calls: Sequence[Sequence[int]]) -> float:
    """Share of computed positions that are padding (0 = none)."""
    real, computed = positions(lengths, calls)
    return 1.0 - real / computed if computed else 0.0
