"""A batch's forward calls, as a pure function on numpy: per tokenizer family, the rows to compute
cut into calls and padded into the arrays the runner uploads. No engine, no model, no torch here.

With CUDA graphs (``Buckets`` names the captured shapes and their cost table) every call is cut
to a captured bucket (``batching.plan_buckets``) and padded to it here, dummy rows included, so
the runner only copies and replays. Without them (the CPU, ``CLS_CUDA_GRAPHS=off``) calls are
length-sorted micro-batches of at most ``micro_batch_tokens`` padded tokens
(``batching.plan_micro_batches``), padded to their longest row, and run eager.

The runner's rows are ``0..len(rows)-1``: the position of each computed row in ``rows``, so its
results come back in that order whatever subset of the batch is being (re)computed.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from solution.server.compute import batching
from solution.server.compute.buckets import Shape
from solution.server.compute.costs import CostTable, default_table


class FamilyLike(Protocol):
    """What planning needs of a tokenizer family (``families.Family`` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def members(self) -> list[int]: ...

    @property
    def pad_id(self) -> int: ...


@dataclass
class ForwardCall:
    """One forward call for one family. Its first ``len(rows)`` rows are real: ``rows[i]`` is
    the runner's row of row ``i``; any rows after them are a bucket's dummy rows."""

    rows: np.ndarray  # (k,) int64
    input_ids: np.ndarray  # (bucket rows, bucket length) or (k, longest) int64, right-padded
    attention_mask: np.ndarray  # bool, the same shape; no row fully masked
    bucket: Shape | None = None  # the captured shape it replays; None: eager

    @property
    def real_rows(self) -> int:
        return len(self.rows)


@dataclass
class FamilyWork:
    """Calls that ``members`` (model indices sharing this tokenization) all run. A batch may hold
    several for one family, with different member subsets."""

    members: list[int]
    calls: list[ForwardCall]


@dataclass(frozen=True)
class Buckets:
    """What CUDA graphs offer the planner: the shapes captured for every model, and the costs
    that decide between a bucket and eager. No shapes: plain micro-batches."""

    shapes: tuple[Shape, ...] = ()
    costs: CostTable = field(default_factory=lambda: default_table(()))

    @functools.cached_property
    def menu(self) -> batching.Menu:
        return batching.Menu.of(self.shapes, self.costs)


@dataclass
class Plan:
    work: list[FamilyWork]
    calls: int  # forward calls per member model, summed over families
    positions: dict[str, tuple[int, int]]  # family name -> (real tokens, computed positions)


def plan(
    ids: Sequence[Sequence[Sequence[int]]],
    families: Sequence[FamilyLike],
    rows: Sequence[int],
    micro_batch_tokens: int,
    max_texts: int,
    wanted: Sequence[frozenset[int] | None] | None = None,
    buckets: Buckets | None = None,
) -> Plan:
    """Forward calls for ``rows`` of a batch whose token ids are ``ids[family][row]``.

    ``wanted[row]`` names the models a row needs (None: all). Rows of a family that need the same
    members share calls; a family none of the rows needs costs nothing."""
    work: list[FamilyWork] = []
    n_calls = 0
    positions: dict[str, tuple[int, int]] = {}
    for f, family in enumerate(families):
        by_members: dict[tuple[int, ...], list[int]] = {}
        for local, row in enumerate(rows):
            want = None if wanted is None else wanted[row]
            members = tuple(m for m in family.members if want is None or m in want)
            if members:
                by_members.setdefault(members, []).append(local)
        real = computed = 0
        for members, locals_ in by_members.items():
            seqs = [ids[f][rows[i]] for i in locals_]
            lengths = [len(s) for s in seqs]
            if buckets is not None and buckets.shapes:
                groups = batching.plan_buckets(lengths, buckets.menu, max_texts, micro_batch_tokens)
            else:
                cut = batching.plan_micro_batches(lengths, micro_batch_tokens, max_texts)
                groups = [batching.Group(g, None) for g in cut]
            calls = [forward_call(seqs, g.indices, family.pad_id, g.bucket) for g in groups]
            for call in calls:  # the runner's rows are positions in ``rows``
                call.rows = np.asarray(locals_, dtype=np.int64)[call.rows]
                computed += call.input_ids.size
            real += sum(lengths)
            n_calls += len(calls)
            work.append(FamilyWork(list(members), calls))
        if by_members:
            positions[family.name] = (real, computed)
    return Plan(work, n_calls, positions)


def forward_call(
    seqs: Sequence[Sequence[int]],
    group: Sequence[int],
    pad_id: int,
    bucket: Shape | None = None,
) -> ForwardCall:
    """The sequences ``group`` indexes, right-padded with ``pad_id`` to the longest of them, or
    to ``bucket`` with dummy rows after them (pad ids, only their first position unmasked: SDPA's
    softmax over a fully masked row is NaN)."""
    chosen = [seqs[i] for i in group]
    lengths = np.fromiter(map(len, chosen), dtype=np.int64, count=len(chosen))
    longest = int(lengths.max())
    shape = bucket if bucket is not None else (len(group), longest)
    if len(group) > shape[0] or longest > shape[1]:
        raise ValueError(f"{len(group)} rows of up to {longest} do not fit {shape}")
    ids = np.full(shape, pad_id, dtype=np.int64)
    mask = np.zeros(shape, dtype=np.bool_)
    # All rows' ids in one conversion, placed by the mask in row order (a row-by-row copy of
    # each Python list cost ~1.5x as much: ~0.4 ms for 128 texts here, on the compute thread).
    real = mask[: len(group)]
    real[...] = np.arange(shape[1]) < lengths[:, None]
    flat = itertools.chain.from_iterable(chosen)
    ids[: len(group)][real] = np.fromiter(flat, dtype=np.int64, count=int(lengths.sum()))
    mask[len(group) :, 0] = True
    return ForwardCall(np.asarray(group, dtype=np.int64), ids, mask, bucket)
