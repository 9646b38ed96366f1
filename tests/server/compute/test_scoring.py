"""Scores from logits on the host: exact per row, whatever else is in the batch; each function."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import orjson
import pytest

from solution.server.compute import scoring
from solution.server.compute.scoring import Answers, Prediction


@dataclass(frozen=True)
class Head:
    """What ``Answers`` reads of a served model."""

    key: str
    labels: tuple[str, ...]
    function: str = "softmax"
    threshold: float | None = None


def top1(logits: np.ndarray, function: str) -> tuple[list[int], list[float]]:
    """(best label index, its score) per row of one model's (rows, labels) logits."""
    labels = tuple(str(i) for i in range(logits.shape[1]))
    answers = Answers([Head("m", labels, function)], logits[None])
    return list(answers.top_index[0]), list(answers.top_score[0])


def ranked(
    row: np.ndarray, function: str, top_k: int | None, raw: bool, threshold: float | None = None
) -> list[tuple[int, float]]:
    """One row's ranked (label index, score) pairs, as ``Answers`` lists them."""
    head = Head("m", tuple(str(i) for i in range(len(row))), function, threshold)
    answer = Answers([head], row[None, None, :]).answer(0, top_k=top_k, raw=raw)["m"]
    assert isinstance(answer, list)
    return [(int(p.label), p.score) for p in answer]


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


HEADS = [Head("sent", ("NEG", "NEU", "POS")), Head("topic", ("a", "b"), "sigmoid", threshold=0.5)]


def batch_logits(rows: int) -> np.ndarray:
    """(models, rows, max labels), zero past a model's labels, as the runner returns it."""
    rng = np.random.default_rng(1)
    out = np.zeros((2, rows, 3), dtype=np.float32)
    out[0] = rng.normal(size=(rows, 3))
    out[1, :, :2] = rng.normal(size=(rows, 2))
    return out


def test_answers_give_each_row_the_top_label_of_every_model_in_order():
    logits = batch_logits(4)
    answers = Answers(HEADS, logits)
    for row in range(4):
        got = answers.answer(row)
        assert list(got) == ["sent", "topic"]
        for m, head in enumerate(HEADS):
            index, score = top1(logits[m, row : row + 1, : len(head.labels)], head.function)
            assert got[head.key] == Prediction(score[0], head.labels[index[0]])
    assert list(answers.answer(0, wanted=frozenset({1}))) == ["topic"]


def test_ranked_and_raw_answers_come_from_the_same_scores():
    logits = batch_logits(3)
    answers = Answers(HEADS, logits)
    row = 2
    everything = answers.answer(row, top_k=None)
    assert [p.label for p in everything["sent"]] == [  # type: ignore[union-attr]
        HEADS[0].labels[i] for i, _ in ranked(logits[0, row], "softmax", None, raw=False)
    ]
    raw = answers.answer(row, raw=True)
    best = answers.answer(row)
    assert raw["sent"].label == best["sent"].label  # type: ignore[union-attr]
    assert raw["sent"].score == float(logits[0, row, HEADS[0].labels.index(raw["sent"].label)])  # type: ignore[union-attr]
    # the threshold leaves labels out of lists only: the top-1 answer always has its label
    sig = 1 / (1 + np.exp(-logits[1, row, :2]))
    listed = answers.answer(row, top_k=None)["topic"]
    assert [p.label for p in listed] == [  # type: ignore[union-attr]
        HEADS[1].labels[i] for i in np.argsort(-sig) if sig[i] >= 0.5
    ]


def test_answers_score_each_model_once_per_batch(monkeypatch):
    calls: list[tuple[int, ...]] = []
    real = scoring.scores

    def counted(logits, function):
        calls.append(logits.shape)
        return real(logits, function)

    monkeypatch.setattr(scoring, "scores", counted)
    answers = Answers(HEADS, batch_logits(5))
    for row in range(5):
        answers.answer(row)
        answers.answer(row, top_k=2, raw=True)
        answers.answer(row, top_k=None)
    assert calls == [(5, 3), (5, 2)]  # one vectorised call per model, whatever was asked


def test_a_prediction_is_the_contracts_object_and_reads_as_attributes():
    prediction = Prediction(0.25, "POSITIVE")
    assert orjson.dumps({"m": prediction}) == b'{"m":{"score":0.25,"label":"POSITIVE"}}'
    assert (prediction.score, prediction.label) == (0.25, "POSITIVE")
    assert prediction == Prediction(0.25, "POSITIVE") != Prediction(0.25, "NEGATIVE")
    assert repr(prediction) == "Prediction(score=0.25, label='POSITIVE')"
