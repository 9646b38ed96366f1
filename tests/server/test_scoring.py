"""Scores from logits on the host: exact per row, whatever else is in the batch."""

from __future__ import annotations

import numpy as np

from solution.server.scoring import top1_softmax


def test_a_rows_score_does_not_depend_on_the_other_rows():
    rng = np.random.default_rng(0)
    batch = rng.normal(size=(37, 45)).astype(np.float32)
    index, score = top1_softmax(batch)
    for row in range(len(batch)):
        alone_index, alone_score = top1_softmax(batch[row : row + 1])
        assert (alone_index[0], alone_score[0]) == (index[row], score[row])  # bit for bit


def test_top1_is_the_largest_probability():
    logits = np.array([[0.0, 2.0, 1.0], [1000.0, 0.0, -1000.0]], dtype=np.float32)
    index, score = top1_softmax(logits)
    assert index == [1, 0]
    expected = np.exp(2.0) / (1 + np.exp(2.0) + np.exp(1.0))
    assert abs(score[0] - expected) < 1e-6 and score[1] == 1.0  # no overflow
