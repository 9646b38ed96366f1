"""A batch through the models with split-and-retry, on a fake runner: no model, no device."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from solution.server.compute.batch import BatchComputer
from solution.server.compute.planning import Buckets
from solution.server.compute.runner import RunOutput
from solution.server.errors import ModelFailure

POISON = 666  # a token id the fake models fail on


@dataclass
class FakeFamily:
    name: str
    members: list[int]
    pad_id: int = 0


class FakeRunner:
    """Two models of one family; a row's logit is the sum of its ids (so answers are checkable),
    and any call holding ``POISON`` raises ``error``."""

    def __init__(self, error: BaseException | None = None):
        self.models = ["m0", "m1"]
        self.max_labels = 2
        self.error = error or RuntimeError("simulated model failure")
        self.calls: list[int] = []
        self.buckets = Buckets()  # no graphs: the planner's micro-batches

    def run(self, work, n_rows):
        self.calls.append(n_rows)
        logits = np.zeros((2, n_rows, 2), dtype=np.float32)
        for family in work:
            for call in family.calls:
                ids = np.asarray(call.input_ids)
                if (ids == POISON).any():
                    raise self.error
                for row, seq in zip(call.rows, ids, strict=True):
                    for m in family.members:
                        logits[m, row] = [seq.sum(), m]
        # every run: one call replayed, two eager, 1/8 s of GPU time (made up, to be summed)
        out = RunOutput(logits, [0.5, 0.25], 0.0, (2, 2))
        out.graph_calls, out.eager_calls, out.gpu_busy_s = 1, 2, 0.125
        return out


def computer(runner: FakeRunner) -> BatchComputer:
    return BatchComputer(runner, [FakeFamily("f", [0, 1])], 1024, 64)  # type: ignore[arg-type]


def rows(*seqs: list[int]) -> list[list[list[int]]]:
    return [list(seqs)]  # one family


def test_every_row_gets_its_logits_in_batch_order():
    runner = FakeRunner()
    out = computer(runner).compute(rows([1, 2], [5], [3, 3, 3]), [None, None, None])
    assert out.logits[0, :, 0].tolist() == [3.0, 5.0, 9.0]
    assert out.failed == {} and runner.calls == [3]
    assert out.gpu_seconds == [0.5, 0.25] and out.positions == {"f": (6, 9)}  # one 3x3 call


def test_a_failing_row_fails_alone_after_halving_and_the_rest_are_answered():
    runner = FakeRunner()
    out = computer(runner).compute(rows([1], [2], [POISON], [4]), [None] * 4)
    assert set(out.failed) == {2} and isinstance(out.failed[2], ModelFailure)
    assert "simulated model failure" in str(out.failed[2])
    assert out.logits[0, [0, 1, 3], 0].tolist() == [1.0, 2.0, 4.0]
    assert runner.calls == [4, 2, 2, 1, 1]  # whole, halves, then the failing half's rows alone
    assert out.gpu_seconds == [1.0, 0.5]  # summed over the two runs that succeeded
    assert out.calls_by_path == {"graph": 2, "eager": 4} and out.gpu_busy_s == 0.25


def test_a_fatal_device_error_is_raised_not_retried():
    runner = FakeRunner(RuntimeError("CUDA error: device-side assert triggered"))
    with pytest.raises(RuntimeError, match="device-side assert"):
        computer(runner).compute(rows([1], [POISON]), [None, None])
    assert runner.calls == [2]


def test_out_of_memory_is_retried_in_halves():
    runner = FakeRunner(torch.cuda.OutOfMemoryError("simulated: CUDA out of memory"))
    out = computer(runner).compute(rows([1], [POISON], [2]), [None] * 3)
    assert set(out.failed) == {1} and out.logits[0, [0, 2], 0].tolist() == [1.0, 2.0]


def test_only_wanted_models_are_planned():
    runner = FakeRunner()
    out = computer(runner).compute(rows([1], [2]), [frozenset({1}), frozenset({1})])
    assert out.logits[0].tolist() == [[0.0, 0.0], [0.0, 0.0]]  # model 0 not computed
    assert out.logits[1, :, 0].tolist() == [1.0, 2.0]
