"""Shape buckets: which shapes are captured; and that an eager forward on a bucket-padded call
gives the real rows' results of the unpadded call."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from solution.server.compute.buckets import BucketGrid
from solution.server.compute.planning import forward_call

GRID = BucketGrid(batch_sizes=(1, 2, 4, 8), lengths=(16, 32, 64), max_tokens=256)


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
    # a batch's token budget lowers the cap
    assert max(b * n for b, n in GRID.shapes(8, 64, max_tokens=128)) == 128


def test_the_default_grid_covers_full_batches_of_tweets():
    """Under the default limits (128 texts, 16,384 tokens per batch, 512 tokens per text) the grid
    holds a full batch of 128-token texts and every length up to 512 for up to 32 rows, in steps
    of at most 8 tokens or a third."""
    shapes = BucketGrid().shapes(max_rows=128, max_length=512, max_tokens=16384)
    assert {(128, 96), (128, 128), (32, 512), (1, 512)} <= set(shapes)
    assert max(b * n for b, n in shapes) == 16384
    lengths = sorted({n for _, n in shapes})
    for longest in range(1, 513):  # a call's length padding: the bound planning states
        bucket = min(n for n in lengths if n >= longest)
        assert bucket <= max(16, longest + 8, 4 * longest / 3)
    assert len(shapes) <= 130  # x5 models: what capture time and memory are sized for


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
    seqs = tokenizer(TEXTS)["input_ids"]
    pad_id = int(tokenizer.pad_token_id)
    plain = forward_call(seqs, range(len(TEXTS)), pad_id)
    shape = (len(TEXTS) + extra[0], plain.input_ids.shape[1] + extra[1])
    padded = forward_call(seqs, range(len(TEXTS)), pad_id, shape)
    assert padded.input_ids.shape == shape and padded.bucket == shape
    with torch.inference_mode():
        expected = model(
            input_ids=torch.from_numpy(plain.input_ids),
            attention_mask=torch.from_numpy(plain.attention_mask.astype("int64")),
        )
        bucketed = model(
            input_ids=torch.from_numpy(padded.input_ids),
            attention_mask=torch.from_numpy(padded.attention_mask)[:, None, None, :],
        )
    real = bucketed.logits[: len(TEXTS)]
    assert torch.isfinite(bucketed.logits).all()  # dummy rows too: none is fully masked
    torch.testing.assert_close(real, expected.logits, rtol=1e-5, atol=1e-5)
