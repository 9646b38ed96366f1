"""Shape buckets: which shapes are captured, which one a call is padded to, how it is padded; and
that an eager forward on the padded shape gives the real rows' results of the unpadded call."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from solution.server.compute.buckets import BucketGrid, choose, pad_call

GRID = BucketGrid(batch_sizes=(1, 2, 4, 8), lengths=(16, 32, 64), max_tokens=256, free_tokens=256)
STRICT = BucketGrid(free_tokens=64)  # padding is paid for beyond 64 tokens


def test_shapes_are_capped_and_cheapest_first():
    shapes = GRID.shapes(max_rows=8, max_length=64)
    assert shapes[0] == (1, 16)
    costs = [b * n for b, n in shapes]
    assert costs == sorted(costs)
    assert all(b * n <= 256 for b, n in shapes)
    assert (8, 32) in shapes and (8, 64) not in shapes  # 512 tokens: beyond max_tokens
    # the planner's own caps become buckets, and nothing beyond them is captured
    capped = GRID.shapes(max_rows=6, max_length=40)
    assert {b for b, _ in capped} == {1, 2, 4, 6}
    assert {n for _, n in capped} == {16, 32, 40}


def test_a_call_goes_to_the_smallest_bucket_that_holds_it():
    shapes = GRID.shapes(8, 64)
    assert choose(1, 5, shapes, GRID) == (1, 16)
    assert choose(3, 17, shapes, GRID) == (4, 32)
    assert choose(4, 32, shapes, GRID) == (4, 32)  # an exact fit pads nothing
    assert choose(9, 10, shapes, GRID) is None  # more rows than any bucket: eager
    assert choose(8, 40, shapes, GRID) is None  # 8x64 was not captured
    assert choose(1, 5, [], GRID) is None


def test_padding_beyond_the_slack_runs_eager_unless_the_bucket_is_small():
    shapes = [(8, 32)]
    assert choose(5, 20, shapes, STRICT) is None  # 256 tokens for 100: more than 1.5x, over 64
    assert choose(5, 20, shapes, GRID) == (8, 32)  # within free_tokens: padding is free
    assert choose(6, 30, shapes, STRICT) == (8, 32)  # 256 <= 1.5 x 180


def test_pad_call_puts_real_rows_first_and_never_masks_a_whole_row():
    ids = np.array([[0, 5, 6, 2], [0, 7, 2, 1]])
    mask = np.array([[1, 1, 1, 1], [1, 1, 1, 0]])
    padded, padded_mask = pad_call(ids, mask, (4, 6), pad_id=1)
    assert padded.shape == padded_mask.shape == (4, 6)
    assert padded_mask.dtype == np.bool_ and padded.dtype == np.int64
    np.testing.assert_array_equal(padded[:2, :4], ids)
    np.testing.assert_array_equal(padded[:2, 4:], 1)
    np.testing.assert_array_equal(padded_mask[:2, :4], mask == 1)
    assert not padded_mask[:2, 4:].any()
    np.testing.assert_array_equal(padded[2:], 1)  # dummy rows: pad ids...
    np.testing.assert_array_equal(padded_mask[2:, 0], True)  # ...with their first position kept
    assert not padded_mask[2:, 1:].any()
    assert padded_mask.any(axis=1).all()
    with pytest.raises(ValueError, match="does not fit"):
        pad_call(ids, mask, (1, 6), pad_id=1)


TEXTS = [
    "This is how true happiness looks like 👍😜",
    "",
    "Это был лучший концерт 我今天很高兴 هذا أجمل يوم https://t.co/AbC123",
    "short",
    "a somewhat longer tweet about the weather and the game tonight, with #tags and @people",
]


@pytest.mark.parametrize("key", ["cardiffnlp", "jy46604790"])  # XLM-R and RoBERTa tokenizers
@pytest.mark.parametrize("extra", [(0, 0), (3, 0), (0, 11), (4, 21)])  # added (rows, columns)
def test_bucketed_forward_gives_the_real_rows_of_the_unbucketed_one(
    standins_tiny: Path, key: str, extra: tuple[int, int]
):
    tokenizer = AutoTokenizer.from_pretrained(standins_tiny / key)
    model = AutoModelForSequenceClassification.from_pretrained(
        standins_tiny / key, dtype=torch.float32
    ).eval()
    enc = tokenizer(TEXTS, padding=True, return_tensors="np")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    shape = (ids.shape[0] + extra[0], ids.shape[1] + extra[1])
    padded, padded_mask = pad_call(ids, mask, shape, int(tokenizer.pad_token_id))
    with torch.inference_mode():
        plain = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
        bucketed = model(
            input_ids=torch.from_numpy(padded),
            attention_mask=torch.from_numpy(padded_mask)[:, None, None, :],
        )
    real = bucketed.logits[: len(TEXTS)]
    assert torch.isfinite(bucketed.logits).all()  # dummy rows too: none is fully masked
    torch.testing.assert_close(real, plain.logits, rtol=1e-5, atol=1e-5)
