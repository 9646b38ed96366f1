"""Batch assembly as pure functions: how a batch's texts become forward calls (what the queue
gives a batch is ``engine.scheduler.Scheduler.cut``'s). No model, no threads, no I/O here, so
every rule is unit-tested on plain lists.

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
