"""A batch through the models with split-and-retry, on a fake runner: no model, no device."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from solution.server.compute import batch as batch_module
from solution.server.compute.batch import BatchComputer
from solution.server.compute.planning import Buckets
from solution.server.compute.runner import RunOutput
from solution.server.errors import ModelFailure
from tests.server.compute.doubles import POISON, FakeFamily, StepRunner


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


# ---- one batch in steps (the GPU pipeline's way), on a runner that computes in steps ----------


def stepped(runner: StepRunner) -> BatchComputer:
    return BatchComputer(runner, [FakeFamily("f", [0, 1])], 1024, 64)  # type: ignore[arg-type]


def test_prepare_launch_finish_gives_what_compute_gives():
    whole = rows([101, 2], [105], [103, 3, 3])
    runner = StepRunner()
    computer = stepped(runner)
    out = computer.finish(computer.launch(computer.prepare(whole, [None] * 3)))
    assert out.logits[0, :, 0].tolist() == [103.0, 105.0, 109.0]
    assert runner.log == [("stage", 101), ("launch", 101), ("collect", 101)]
    assert out.gpu_seconds == [0.5, 0.25] and out.calls_by_path == {"graph": 1, "eager": 2}
    assert out.positions == {"f": (6, 9)} and out.forward_calls == 1


def test_finish_launches_a_batch_only_prepared():
    runner = StepRunner()
    computer = stepped(runner)
    out = computer.finish(computer.prepare(rows([101], [102]), [None, None]))
    assert out.logits[0, :, 0].tolist() == [101.0, 102.0] and [s for s, _ in runner.log] == [
        "stage",
        "launch",
        "collect",
    ]


def test_a_failure_at_collect_splits_and_only_the_failing_text_fails():
    runner = StepRunner()
    computer = stepped(runner)
    out = computer.finish(
        computer.launch(computer.prepare(rows([1], [2], [POISON], [4]), [None] * 4))
    )
    assert set(out.failed) == {2} and isinstance(out.failed[2], ModelFailure)
    assert out.logits[0, [0, 1, 3], 0].tolist() == [1.0, 2.0, 4.0]
    assert out.calls_by_path == {"graph": 2, "eager": 4}  # the two halves' runs that succeeded


@pytest.mark.parametrize("step", ["plan", "stage", "launch"])
def test_an_error_before_collect_is_kept_for_finish_which_splits(step, monkeypatch):
    runner = StepRunner()
    computer = stepped(runner)
    failing = {"stage": runner, "launch": runner, "plan": batch_module.planning}[step]
    real = getattr(failing, step)
    first = [True]

    def fails_once(*args, **kwargs):
        if first[0]:
            first[0] = False
            raise RuntimeError(f"simulated {step} failure")
        return real(*args, **kwargs)

    monkeypatch.setattr(failing, step, fails_once)
    pending = computer.launch(computer.prepare(rows([1], [2]), [None, None]))  # never raises
    assert pending.error is not None and f"simulated {step}" in str(pending.error)
    out = computer.finish(pending)
    assert out.failed == {} and out.logits[0, :, 0].tolist() == [1.0, 2.0]  # both halves ran


def test_a_fatal_device_error_at_collect_is_raised_not_retried():
    runner = StepRunner(error=RuntimeError("CUDA error: device-side assert triggered"))
    computer = stepped(runner)
    pending = computer.launch(computer.prepare(rows([1], [POISON]), [None, None]))
    with pytest.raises(RuntimeError, match="device-side assert"):
        computer.finish(pending)
    assert [s for s, _ in runner.log] == ["stage", "launch", "collect"]


def test_out_of_memory_at_collect_empties_the_cache_then_halves(monkeypatch):
    emptied: list[str] = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append("empty"))
    runner = StepRunner(error=torch.cuda.OutOfMemoryError("simulated: CUDA out of memory"))
    real_run = runner.run

    def run(work, n_rows):
        emptied.append("run")
        return real_run(work, n_rows)

    runner.run = run  # type: ignore[method-assign]
    computer = stepped(runner)
    out = computer.finish(computer.launch(computer.prepare(rows([1], [POISON], [2]), [None] * 3)))
    assert set(out.failed) == {1} and out.logits[0, [0, 2], 0].tolist() == [1.0, 2.0]
    assert emptied[:2] == ["empty", "run"]  # the cache is emptied before the halves run


def test_a_batch_staged_before_a_retry_is_staged_again_at_its_launch():
    """The runner's staging buffers go round: a retry's runs after B was staged reuse B's (here
    the last of them leaves [103], [104] where B's inputs were: B would get their logits)."""
    runner = StepRunner()
    computer = stepped(runner)
    a = computer.launch(computer.prepare(rows([101], [POISON], [103], [104]), [None] * 4))
    b = computer.prepare(rows([201], [202]), [None, None])
    assert set(computer.finish(a).failed) == {1}  # its halves' runs staged four times
    out = computer.finish(computer.launch(b))
    assert out.failed == {} and out.logits[0, :, 0].tolist() == [201.0, 202.0]
    assert runner.steps("stage").count(("stage", 201)) == 2
    assert ("run", 201) not in runner.log  # computed from its own inputs, not split and retried


def test_a_batch_staged_with_nothing_after_it_is_not_staged_again():
    runner = StepRunner()
    computer = stepped(runner)
    a = computer.launch(computer.prepare(rows([101], [102]), [None, None]))
    b = computer.prepare(rows([201], [202]), [None, None])
    computer.finish(a)
    computer.finish(computer.launch(b))
    assert runner.steps("stage") == [("stage", 101), ("stage", 201)]
