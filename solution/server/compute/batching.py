"""Batch assembly as pure functions: how a batch's texts become forward calls (what the queue
gives a batch is ``engine.scheduler.Scheduler.cut``'s). No model, no threads, no I/O here, so
every rule is unit-tested on plain lists.

- ``dedupe``: identical texts in a batch are computed once.
- ``plan_micro_batches``: sort by length, then cut so that padded tokens per forward call stay
  within a budget; similar lengths share a call, which keeps padding low (no CUDA graphs).
- ``plan_buckets``: sort by length, then cut into calls that each run in a captured bucket, at
  the least total cost of a cost table (``costs.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np

from solution.server.compute.buckets import Shape
from solution.server.compute.costs import CostTable


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


@dataclass(frozen=True)
class Group:
    """One planned forward call: indices into the lengths, shortest first, and the bucket it
    replays (None: eager, padded to its longest)."""

    indices: list[int]
    bucket: Shape | None


@dataclass(frozen=True)
class Menu:
    """The captured buckets as lookup tables, built once (at start-up) rather than per batch:
    for each row count and each longest-text length, the bucket length that holds it (0: none)
    and its replay seconds (inf: none)."""

    rows: np.ndarray  # (R,) row counts, largest first
    bucket_len: np.ndarray  # (R, longest + 2) int64; the last column: any longer text
    replay_s: np.ndarray  # (R, longest + 2) float64
    costs: CostTable

    @classmethod
    def of(cls, available: Iterable[Shape], costs: CostTable) -> Menu:
        by_rows: dict[int, list[int]] = {}
        for b, length in available:
            by_rows.setdefault(b, []).append(length)
        rows = sorted(by_rows, reverse=True)
        longest = max((n for ns in by_rows.values() for n in ns), default=0)
        bucket_len = np.zeros((len(rows), longest + 2), dtype=np.int64)
        replay_s = np.full((len(rows), longest + 2), math.inf)
        for i, r in enumerate(rows):
            upper = 0
            for n in sorted(by_rows[r]):  # lengths upper+1..n go to the bucket of n
                bucket_len[i, upper + 1 : n + 1] = n
                replay_s[i, upper + 1 : n + 1] = costs.replay((r, n))
                upper = n
        return cls(np.asarray(rows, dtype=np.int64), bucket_len, replay_s, costs)


def plan_buckets(
    lengths: Sequence[int], menu: Menu, max_texts: int, max_eager_tokens: int
) -> list[Group]:
    """The cheapest cut of a length-sorted batch into calls (longest call first), by dynamic
    programming over the sorted order: a call ending at the j-th shortest text either fills a
    bucket of ``r`` rows (the ``r`` texts up to j: adding shorter texts to a bucket costs
    nothing, its longest sets the length) or takes the texts left when fewer than ``r`` remain,
    with the smallest such ``r`` only (row padding under 2x); it replays the smallest captured
    length that holds its longest text, or runs its own shape eager where the costs say that is
    cheaper (``costs.choose``'s rule). An eager call of up to ``max_eager_tokens`` padded tokens
    is the fallback for what no bucket holds. Linear in the texts (times the row counts); the
    costs come from the menu's tables in a few numpy operations."""
    order = np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable")
    need = np.maximum(np.asarray(lengths, dtype=np.int64)[order], 1)
    n = len(need)
    ends = np.arange(1, n + 1)
    keep = menu.rows <= max_texts
    rows = menu.rows[keep]
    column = np.minimum(need, menu.bucket_len.shape[1] - 1)
    # per row count r (rows) and the call ending at each j (columns): bucket length and cost
    bucket_lens = menu.bucket_len[keep][:, column]
    replay = menu.replay_s[keep][:, column]
    eager = menu.costs.eager_many(np.minimum(ends[None, :], rows[:, None]), need[None, :])
    eager = np.where(bucket_lens > 0, eager, math.inf)  # no bucket of r rows: no option
    use_eager = (eager < replay).tolist()
    costs = np.minimum(replay, eager).tolist()
    sizes = rows.tolist()
    lens = bucket_lens.tolist()
    fallback = np.maximum(1, np.minimum(np.minimum(ends, max_texts), max_eager_tokens // need))
    fallback_cost = menu.costs.eager_many(fallback, need).tolist()
    fallback_rows = fallback.tolist()

    best = [0.0] * (n + 1)
    pick = [-1] * (n + 1)  # per j: the option (index into sizes) of the call ending there
    full = len(sizes)  # sizes[full:] are the row counts of at most j: full groups end at j
    for j in range(1, n + 1):
        i = j - 1
        while full > 0 and sizes[full - 1] <= j:
            full -= 1
        # ties go to the later option: a bucket over the fallback, a larger group over a smaller
        best_j = best[j - fallback_rows[i]] + fallback_cost[i]
        pick_j = -1
        for o in range(len(sizes) - 1, full - 1, -1):  # full groups, smaller r first
            total = best[j - sizes[o]] + costs[o][i]
            if total <= best_j:
                best_j, pick_j = total, o
        exact = full < len(sizes) and sizes[full] == j
        if full > 0 and not exact and costs[full - 1][i] <= best_j:  # the j shortest: r > j
            best_j, pick_j = costs[full - 1][i], full - 1
        best[j], pick[j] = best_j, pick_j
    groups: list[Group] = []
    j = n
    while j > 0:
        o = pick[j]
        if o < 0:
            start, bucket = j - fallback_rows[j - 1], None
        else:
            start = max(0, j - sizes[o])
            bucket = None if use_eager[o][j - 1] else (sizes[o], lens[o][j - 1])
        groups.append(Group(order[start:j].tolist(), bucket))
        j = start
    return groups


def positions(lengths: Sequence[int], calls: Sequence[Sequence[int]]) -> tuple[int, int]:
    """(real tokens, computed positions) of the calls: each call computes ``count x longest``."""
    computed = sum(len(c) * max(lengths[i] for i in c) for c in calls if c)
    return sum(lengths[i] for c in calls for i in c), computed
