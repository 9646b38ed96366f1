"""Scores from logits on the host: exact per row, whatever else is in the batch; each function."""

from __future__ import annotations

import math

import numpy as np
import pytest

from solution.server.compute.scoring import ranked, top1


def test_a_rows_score_does_not_depend_on_the_other_rows():
    rng = np.random.default_rng(0)
    batch = rng.normal(size=(37, 45)).astype(np.float32)
    for function in ("softmax", "sigmoid", "none"):
        index, score = top1(batch, function)
        for row in range(len(batch)):
            alone_index, alone_score = top1(batch[row : row + 1], function)
            assert (alone_index[0], alone_score[0]) == (index[row], score[row])  # bit for bit


def test_top1_is_the_largest_score_of_each_function():
    logits = np.array([[0.0, 2.0, 1.0], [1000.0, 0.0, -1000.0]], dtype=np.float32)
    index, score = top1(logits, "softmax")
    assert index == [1, 0]
    assert score[0] == pytest.approx(math.exp(2) / (1 + math.exp(2) + math.exp(1)), rel=1e-6)
    assert score[1] == 1.0  # no overflow
    assert top1(logits, "sigmoid") == ([1, 0], [pytest.approx(1 / (1 + math.exp(-2))), 1.0])
    assert top1(logits, "none") == ([1, 0], [2.0, 1000.0])
    assert top1(np.array([[-3.5]], dtype=np.float32), "none") == ([0], [-3.5])  # regression


def test_ranked_is_best_first_cut_at_k_or_whole():
    logits = np.array([0.5, 3.0, -1.0, 2.0], dtype=np.float32)
    assert [i for i, _ in ranked(logits, "softmax", 2, raw=False)] == [1, 3]
    everything = ranked(logits, "softmax", None, raw=False)
    assert [i for i, _ in everything] == [1, 3, 0, 2]
    assert sum(s for _, s in everything) == pytest.approx(1.0)
    assert ranked(logits, "softmax", 10, raw=False) == everything  # k beyond the label count


def test_raw_scores_are_the_logits_in_the_functions_order():
    logits = np.array([0.5, 3.0, -1.0], dtype=np.float32)
    assert ranked(logits, "softmax", None, raw=True) == [(1, 3.0), (0, 0.5), (2, -1.0)]


def test_a_threshold_leaves_out_the_sigmoid_labels_below_it():
    logits = np.array([2.0, -2.0, 0.1], dtype=np.float32)  # sigmoid: 0.88, 0.12, 0.52
    assert [i for i, _ in ranked(logits, "sigmoid", None, raw=False, threshold=0.5)] == [0, 2]
    assert ranked(logits, "sigmoid", None, raw=False, threshold=0.95) == []
