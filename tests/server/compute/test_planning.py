"""Call planning as a pure function on numpy: micro-batches per family without graphs, captured
buckets with them, padding, rows."""

from __future__ import annotations

import math
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer

from solution.server.compute.buckets import BucketGrid
from solution.server.compute.costs import CostTable, default_table
from solution.server.compute.planning import Buckets, forward_call, plan
from solution.standins.corpus import reference_texts


@dataclass
class Fam:
    name: str
    members: list[int]
    pad_id: int


IDS = [
    # family 0: lengths 2, 5, 3, 9, 1
    [[0, 2], [0, 5, 6, 7, 2], [0, 9, 2], [0, 1, 2, 3, 4, 5, 6, 7, 2], [0]],
    # family 1: the same texts, another tokenizer
    [[0, 2], [0, 8, 2], [0, 9, 9, 2], [0, 3, 3, 3, 3, 3, 2], [0, 2]],
]
FAMILIES = [Fam("xlmr", [0, 1, 2, 3], pad_id=1), Fam("roberta", [4], pad_id=7)]


def test_rows_are_cut_by_length_within_the_budget_and_padded_per_call():
    p = plan(IDS, FAMILIES, [1, 3, 4], micro_batch_tokens=10, max_texts=8)
    assert [w.members for w in p.work] == [[0, 1, 2, 3], [4]]
    for work, family, ids in zip(p.work, FAMILIES, IDS, strict=True):
        seen = sorted(r for call in work.calls for r in call.rows.tolist())
        assert seen == [0, 1, 2]  # the runner's rows: positions in [1, 3, 4]
        for call in work.calls:
            rows, longest = call.input_ids.shape
            assert rows * longest <= 10 or rows == 1
            for j, r in enumerate(call.rows):
                seq = ids[[1, 3, 4][r]]
                assert call.input_ids[j, : len(seq)].tolist() == seq
                assert (call.input_ids[j, len(seq) :] == family.pad_id).all()
                padding = [0] * (longest - len(seq))
                assert call.attention_mask[j].tolist() == [1] * len(seq) + padding
    assert p.calls == sum(len(w.calls) for w in p.work)
    for work, family, ids in zip(p.work, FAMILIES, IDS, strict=True):
        computed = sum(c.input_ids.size for c in work.calls)
        assert p.positions[family.name] == (sum(len(ids[r]) for r in (1, 3, 4)), computed)
    first = p.work[0].calls[0]
    assert first.rows.tolist() == [1]  # longest first: the worst-case memory shows at once


def test_max_texts_caps_a_call():
    p = plan(IDS, FAMILIES[:1], range(5), micro_batch_tokens=10_000, max_texts=2)
    assert [len(c.rows) for c in p.work[0].calls] == [2, 2, 1]


def test_forward_call_pads_to_the_longest_of_its_group():
    call = forward_call([[5, 6, 7], [8]], [1, 0], pad_id=3)
    assert call.rows.tolist() == [1, 0] and call.bucket is None
    assert call.input_ids.tolist() == [[8, 3, 3], [5, 6, 7]]
    assert call.attention_mask.tolist() == [[1, 0, 0], [1, 1, 1]]
    assert call.input_ids.dtype == np.int64 and call.attention_mask.dtype == np.bool_


def test_forward_call_pads_to_a_bucket_with_dummy_rows_never_fully_masked():
    call = forward_call([[5, 6, 7], [8]], [1, 0], pad_id=3, bucket=(4, 5))
    assert call.bucket == (4, 5) and call.real_rows == 2
    assert call.input_ids.tolist() == [[8, 3, 3, 3, 3], [5, 6, 7, 3, 3], [3] * 5, [3] * 5]
    first_only = [1, 0, 0, 0, 0]  # a dummy row, and the shortest real one
    assert call.attention_mask.tolist() == [first_only, [1, 1, 1, 0, 0], first_only, first_only]
    with pytest.raises(ValueError, match="do not fit"):
        forward_call([[5, 6, 7], [8]], [1, 0], pad_id=3, bucket=(1, 5))


def test_planning_needs_neither_torch_nor_the_runner():
    code = (
        "import sys; import solution.server.compute.planning; "
        "print(sorted(m for m in ('torch', 'solution.server.compute.runner') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


SMALL = Buckets(((1, 16), (2, 16), (4, 16), (8, 16)), default_table([]))


def test_with_buckets_every_call_is_cut_and_padded_to_one():
    buckets = Buckets(SMALL.shapes, default_table(SMALL.shapes))
    p = plan(IDS, FAMILIES, range(5), micro_batch_tokens=10, max_texts=8, buckets=buckets)
    for work in p.work:
        assert sorted(r for c in work.calls for r in c.rows.tolist()) == [0, 1, 2, 3, 4]
        for call in work.calls:
            assert call.bucket is not None and call.input_ids.shape == call.bucket
    # positions count what the buckets compute, dummy rows included
    assert p.positions["xlmr"][1] == sum(c.input_ids.size for c in p.work[0].calls)


# ---- batches drawn like the challenge's texts -------------------------------------------------

GRID = BucketGrid().shapes(max_rows=128, max_length=512, max_tokens=16384)
TABLES = {
    # what start-up assumes without a measurement: launch costs, T4-priced tokens
    "default": default_table(GRID),
    # launch-bound (an H200-like card, made up): 1.2 ms per replayed set, 25 ms eager, 2 us/token
    "large gpu": CostTable({s: 0.0012 + 2e-6 * s[0] * s[1] for s in GRID}, 0.025, 2e-6),
    # padding dearer than launches (made up): every call pays mostly for its tokens
    "gpu-bound": CostTable({s: 0.0002 + 1e-4 * s[0] * s[1] for s in GRID}, 0.002, 1e-4),
}


@pytest.fixture(scope="module")
def corpus_ids(standins_tiny: Path) -> list[list[list[int]]]:
    """The reference client's texts through the stand-ins' two tokenizers (~55 tokens each)."""
    texts = reference_texts(600, seed=3)
    return [
        AutoTokenizer.from_pretrained(standins_tiny / key)(texts)["input_ids"]
        for key in ("cardiffnlp", "jy46604790")
    ]


@pytest.mark.parametrize("table", sorted(TABLES))
def test_corpus_batches_plan_every_call_to_a_bucket_with_bounded_padding(corpus_ids, table):
    """Every call has a bucket, unless its table prices padding above launches. The stated
    bound, for any cost table: a call's bucket holds exactly its rows, except the
    call of the shortest texts, which pads to under 2x its rows; its length is at most
    max(16, longest + 8, 4/3 x longest) (the grid's steps). With the default table a whole batch
    computes at most 1.3x its real tokens (today's micro-batches of 4,096 tokens: up to 2.1x
    on batches of 32, 1.4x on 128)."""
    buckets = Buckets(tuple(GRID), TABLES[table])
    rng = random.Random(7)
    eager = 0
    for size in (1, 2, 3, 7, 16, 33, 64, 100, 128):
        rows = rng.sample(range(600), size)
        p = plan(corpus_ids, FAMILIES, rows, 4096, 128, buckets=buckets)
        for work, ids in zip(p.work, corpus_ids, strict=True):
            shortest = min(len(ids[r]) for r in rows)
            for call in work.calls:
                lengths = [len(ids[rows[r]]) for r in call.rows.tolist()]
                longest, k = max(lengths), len(lengths)
                if call.bucket is None:  # eager: cheaper than any bucket, by this table
                    assert table == "gpu-bound" and call.input_ids.shape == (k, longest)
                    eager += 1
                    continue
                assert call.bucket in buckets.shapes
                assert call.bucket[1] <= max(16, longest + 8, math.ceil(4 * longest / 3))
                if min(lengths) > shortest:
                    assert call.bucket[0] == k
                else:
                    assert call.bucket[0] < 2 * k or k == 1 == call.bucket[0]
        if table == "default" and size >= 16:
            for name, (real, computed) in p.positions.items():
                assert computed <= 1.3 * real, (size, name)
    assert (eager > 0) == (table == "gpu-bound")
