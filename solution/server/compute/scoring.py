"""Turning a batch's logits into answers, on the host.

The runner brings each model's logits to the host in the batch's one copy; what is left per text
(a softmax or sigmoid over 1 to 45 labels, a top-1 or a sort) costs microseconds per batch. The
contract's answer (the top label and its probability) is vectorised per model over the batch;
ranked lists are built only for the requests that ask for them.

A model's function is how its logits become scores (Hugging Face pipeline's
``function_to_apply``): ``softmax`` (single-label), ``sigmoid`` (multi-label: each label on its
own), ``none`` (regression, or raw logits).
"""

from __future__ import annotations

import numpy as np
import torch


def scores(logits: np.ndarray, function: str) -> torch.Tensor:
    """Row-wise scores of a (rows, labels) float32 array, with torch's kernels: the numerics the
    runner used when it computed them on the device (numpy's float32 ``exp`` and sum round
    differently in the last bit)."""
    values = torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32))
    if function == "softmax":
        return values.softmax(-1)
    if function == "sigmoid":
        return values.sigmoid()
    return values


def top1(logits: np.ndarray, function: str) -> tuple[list[int], list[float]]:
    """(best label index, its score) per row, as Python numbers."""
    best, index = scores(logits, function).max(-1)
    return index.tolist(), best.tolist()


def ranked(
    logits: np.ndarray,
    function: str,
    top_k: int | None,
    raw: bool,
    threshold: float | None = None,
) -> list[tuple[int, float]]:
    """One row's labels by score, best first: the ``top_k`` best (all with None), scored by the
    model's function or, with ``raw``, by the logits themselves. A sigmoid model's ``threshold``
    leaves out labels scored below it."""
    row = logits[None, :]
    order_scores = scores(row, function)[0]
    values = (
        torch.from_numpy(np.ascontiguousarray(row[0], dtype=np.float32)) if raw else order_scores
    )
    k = len(order_scores) if top_k is None else min(top_k, len(order_scores))
    best = torch.topk(order_scores, k)  # the order of the function's scores (= of the logits)
    pairs = [(int(i), float(values[i])) for i in best.indices.tolist()]
    if threshold is not None:
        pairs = [(i, s) for i, s in pairs if float(order_scores[i]) >= threshold]
    return pairs
