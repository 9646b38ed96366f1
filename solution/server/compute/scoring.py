"""Turning a batch's logits into answers, on the host: scores, and the answers' shape.

The runner brings each model's logits to the host in the batch's one copy; what is left per text
(a softmax or sigmoid over 1 to 45 labels, a top-1 or a sort) costs microseconds per batch.
``Answers`` scores each model's rows once per batch (vectorised), reads the contract's answer
(the top label and its score) off those scores, and builds ranked lists from the same scores only
for the requests that ask for them (``top_k``, ``raw_scores``).

A model's function is how its logits become scores (Hugging Face pipeline's
``function_to_apply``): ``softmax`` (single-label), ``sigmoid`` (multi-label: each label on its
own), ``none`` (regression, or raw logits).

All of it is numpy, whose operations run on the calling thread. torch's CPU kernels enter an
OpenMP parallel region even for a 128x2 softmax; with the process's other torch threads asleep
(``OMP_WAIT_POLICY=PASSIVE``) each such op cost 100-190 us instead of 5-13, and a 16-128-row
batch's ten of them 0.9-1.9 ms (2 and 16 threads on the 2-core development machine). A GPU host
keeps one torch thread per core, and this runs on the compute thread between a batch's download
and its answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

SINGLE = 0  # ``top_k`` of the contract: one prediction per model, not a list


class Prediction(dict[str, float | str]):
    """One model's answer for one text: ``{"score": ..., "label": ...}``, read as ``.score`` and
    ``.label``. A dict, not a dataclass, because the event loop serializes every answer it sends
    and orjson writes five of these as dicts in 0.6-0.9 us, as dataclasses in 4.4-7.6 us."""

    __slots__ = ()

    def __init__(self, score: float, label: str):
        super().__init__(score=score, label=label)

    @property
    def score(self) -> float:
        return self["score"]  # type: ignore[return-value]

    @property
    def label(self) -> str:
        return self["label"]  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"Prediction(score={self.score!r}, label={self.label!r})"


# response key -> its answer, in the configured model order: one prediction (the contract), or
# a ranked list when the request asked for ``top_k``
Result = dict[str, Prediction | list[Prediction]]


class Scorable(Protocol):
    """What scoring needs of a served model (``models.LoadedModel`` is one)."""

    @property
    def key(self) -> str: ...

    @property
    def labels(self) -> tuple[str, ...]: ...

    @property
    def function(self) -> str: ...

    @property
    def threshold(self) -> float | None: ...


def scores(logits: np.ndarray, function: str) -> np.ndarray:
    """Row-wise float32 scores of a (rows, labels) array: each row's value depends on that row
    alone (bit for bit, whatever else is in the batch)."""
    values = np.asarray(logits, dtype=np.float32)
    if function == "softmax":
        exp = np.exp(values - values.max(-1, keepdims=True))
        return exp / exp.sum(-1, keepdims=True)
    if function == "sigmoid":
        with np.errstate(over="ignore"):  # exp(-x) overflows to inf for x < -88: the score is 0
            return np.float32(1) / (np.float32(1) + np.exp(-values))
    return values


def _top1(row_scores: np.ndarray) -> tuple[list[int], list[float]]:
    """(best label index, its score) per row, as Python numbers."""
    index = row_scores.argmax(-1)
    return index.tolist(), row_scores[np.arange(len(index)), index].tolist()


def _rank(
    row_scores: np.ndarray,
    row_logits: np.ndarray,
    top_k: int | None,
    raw: bool,
    threshold: float | None,
) -> list[tuple[int, float]]:
    """One row's labels by score, best first (ties: the lower index first): the ``top_k`` best
    (all with None), valued by the scores or, with ``raw``, the logits; a sigmoid model's
    ``threshold`` leaves out labels scored below it."""
    k = len(row_scores) if top_k is None else min(top_k, len(row_scores))
    order = np.argsort(-row_scores, kind="stable")[:k].tolist()  # = the logits' order
    values = row_logits if raw else row_scores
    pairs = [(i, float(values[i])) for i in order]
    if threshold is not None:
        pairs = [(i, s) for i, s in pairs if float(row_scores[i]) >= threshold]
    return pairs


class Answers:
    """One batch's answers, scored once: ``logits`` is (models, rows, max labels), as the runner
    returns it (columns past a model's labels, and models a row did not compute, are ignored)."""

    def __init__(self, models: Sequence[Scorable], logits: np.ndarray):
        self.models = list(models)
        self.logits = logits
        self.scores = [
            scores(logits[m, :, : len(model.labels)], model.function)
            for m, model in enumerate(self.models)
        ]
        self.top_index, self.top_score = zip(*(_top1(s) for s in self.scores), strict=True)

    def answer(
        self,
        row: int,
        wanted: frozenset[int] | None = None,
        top_k: int | None = SINGLE,
        raw: bool = False,
    ) -> Result:
        """The answer of ``row`` for the models ``wanted`` (None: all), in the configured order:
        per model the top label and its score (``top_k`` SINGLE), or a ranked list of the ``top_k``
        best (None: every label); with ``raw`` the scores are the logits."""
        answer: Result = {}
        for m, model in enumerate(self.models):
            if wanted is not None and m not in wanted:
                continue
            if top_k == SINGLE:
                index = self.top_index[m][row]
                score = float(self.logits[m, row, index]) if raw else self.top_score[m][row]
                answer[model.key] = Prediction(score, model.labels[index])
            else:
                n = len(model.labels)
                pairs = _rank(
                    self.scores[m][row], self.logits[m, row, :n], top_k, raw, model.threshold
                )
                answer[model.key] = [Prediction(score, model.labels[i]) for i, score in pairs]
        return answer
