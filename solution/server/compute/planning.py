"""A batch's forward calls, as a pure function: per tokenizer family, the rows to compute cut into
length-sorted micro-batches (``batching.plan_micro_batches``) and right-padded into tensors the
runner takes. No engine, no model, no device here.

The runner's rows are ``0..len(rows)-1``: the position of each computed row in ``rows``, so its
results come back in that order whatever subset of the batch is being (re)computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from solution.server.compute import batching
from solution.server.compute.runner import FamilyWork, ForwardCall


class FamilyLike(Protocol):
    """What planning needs of a tokenizer family (``families.Family`` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def members(self) -> list[int]: ...

    @property
    def pad_id(self) -> int: ...


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
            groups = batching.plan_micro_batches(lengths, micro_batch_tokens, max_texts)
            calls = [forward_call(seqs, group, family.pad_id) for group in groups]
            for call in calls:  # the runner's rows are positions in ``rows``
                call.rows = [locals_[i] for i in call.rows]
            n_calls += len(calls)
            r, c = batching.positions(lengths, groups)
            real, computed = real + r, computed + c
            work.append(FamilyWork(list(members), calls))
        if by_members:
            positions[family.name] = (real, computed)
    return Plan(work, n_calls, positions)


def forward_call(seqs: Sequence[Sequence[int]], group: Sequence[int], pad_id: int) -> ForwardCall:
    """The sequences ``group`` indexes, right-padded with ``pad_id`` to the longest of them."""
    longest = max(len(seqs[i]) for i in group)
    ids = np.full((len(group), longest), pad_id, dtype=np.int64)
    mask = np.zeros((len(group), longest), dtype=np.int64)
    for j, i in enumerate(group):
        ids[j, : len(seqs[i])] = seqs[i]
        mask[j, : len(seqs[i])] = 1
    return ForwardCall(list(group), torch.from_numpy(ids), torch.from_numpy(mask))
