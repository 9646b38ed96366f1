"""The compute thread's pipeline on a fake runner that computes in steps and logs them
(``tests/server/compute/doubles.py``): on CUDA the next batch is staged between the launch and
the collect of the one computing and launched right after that collect, before its answers are
shaped; a failure with a batch staged leaves that batch its own inputs; the CPU runs each batch
in a row, as before the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from solution.server.compute.batch import BatchComputer
from solution.server.engine import pipeline as pipeline_module
from solution.server.engine.entries import Batch, Entry, Lane, Submission
from solution.server.engine.options import Options
from solution.server.engine.pipeline import Pipeline
from solution.server.errors import ModelFailure
from tests.server.compute.doubles import POISON, FakeFamily, StepRunner


@dataclass(frozen=True)
class FakeModel:
    key: str
    labels: tuple[str, ...] = ("sum", "index")
    function: str = "none"  # raw logits: a row's answer for model m0 is the sum of its ids
    threshold: float | None = None


MODELS = [FakeModel("m0"), FakeModel("m1")]


@dataclass
class Ticket:
    options: Options = field(default_factory=lambda: Options(raw_scores=True))


def batch(*seqs: list[int]) -> Batch:
    """One request's texts, one row each, ids ``seqs`` for the one family."""
    submission = Submission(len(seqs), ticket=Ticket())
    entries = [Entry(f"text {i}", submission, i, i, Lane.SHORT) for i in range(len(seqs))]
    submission.entries = entries
    rows = list(range(len(seqs)))
    return Batch(entries, [e.text for e in entries], rows, [list(seqs)], [None] * len(seqs))


def sums(outcomes: list[Any]) -> list[float | str]:
    """Model m0's answer per entry (the sum of its ids), or the error's type name."""
    return [type(o).__name__ if isinstance(o, Exception) else o["m0"].score for _, o in outcomes]


def pipeline(runner: StepRunner, monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    """A pipeline on ``runner`` whose answering is logged in ``runner.log`` too."""
    real_answer = pipeline_module.answer

    def answer(models: Any, done: Batch, *args: Any) -> Any:
        runner.log.append(("answer", done.ids[0][0][0]))
        return real_answer(models, done, *args)

    monkeypatch.setattr(pipeline_module, "answer", answer)
    computer = BatchComputer(runner, [FakeFamily("f", [0, 1])], 1024, 64)  # type: ignore[arg-type]
    return Pipeline(computer, MODELS, ahead=runner.device.type == "cuda")


def test_on_cuda_the_next_batch_is_staged_during_the_last_and_launched_right_after_it(
    monkeypatch,
):
    runner = StepRunner("cuda")
    p = pipeline(runner, monkeypatch)
    a, b = batch([101], [102, 1]), batch([201], [202])
    p.start(a)
    assert p.busy and p.wants_next
    p.stage(b)
    assert not p.wants_next  # one staged at a time
    done, outcomes, report = p.finish()
    assert done is a and sums(outcomes) == [101.0, 103.0]
    assert runner.log == [
        ("stage", 101),
        ("launch", 101),
        ("stage", 201),  # after A's launch, before its collect
        ("collect", 101),
        ("launch", 201),  # at once after A's collect: no host work between
        ("answer", 101),
    ]
    assert p.busy and p.wants_next  # B computes; the one after it may be staged
    done, outcomes, report_b = p.finish()
    assert done is b and sums(outcomes) == [201.0, 202.0] and not p.busy
    assert runner.log[-2:] == [("collect", 201), ("answer", 201)]
    for r in (report, report_b):  # each batch reports its own run, not its neighbour's
        assert r.calls_by_path == {"graph": 1, "eager": 2} and r.gpu_busy_s == 0.125
        assert r.texts == 2 and r.failed_texts == 0 and r.wall_s > 0


def test_a_failed_collect_with_the_next_batch_staged_leaves_it_its_own_inputs(monkeypatch):
    """A's split-and-retry runs reuse the staging buffers B was staged into: B is staged again
    before its launch (without that, B answers [103, 104]: the last retry's inputs)."""
    runner = StepRunner("cuda")
    p = pipeline(runner, monkeypatch)
    a, b = batch([101], [POISON], [103], [104]), batch([201], [202])
    p.start(a)
    p.stage(b)
    _, outcomes, report = p.finish()
    assert sums(outcomes) == [101.0, "ModelFailure", 103.0, 104.0]
    assert report.failed_texts == 1 and report.gpu_busy_s == 2 * 0.125  # its two runs that worked
    _, outcomes, _ = p.finish()
    assert sums(outcomes) == [201.0, 202.0]
    assert ("run", 201) not in runner.log  # launched once, from its own inputs
    assert runner.steps("stage", "launch").count(("stage", 201)) == 2


def test_a_fatal_error_in_the_collect_raises_and_the_staged_batch_is_never_launched(monkeypatch):
    runner = StepRunner("cuda", error=RuntimeError("CUDA error: an illegal memory access"))
    p = pipeline(runner, monkeypatch)
    p.start(batch([101], [POISON]))
    p.stage(batch([201]))
    with pytest.raises(RuntimeError, match="illegal memory access"):
        p.finish()
    assert ("launch", 201) not in runner.log and ("run", 101) not in runner.log


def test_an_error_staging_the_next_batch_fails_only_that_batch_and_is_split(monkeypatch):
    runner = StepRunner("cuda")
    p = pipeline(runner, monkeypatch)
    real_stage = runner.stage

    def stage(work: Any, n_rows: int) -> Any:
        if n_rows == 2 and runner.log[-1] == ("launch", 101):  # B's staging ahead
            raise RuntimeError("simulated staging failure")
        return real_stage(work, n_rows)

    monkeypatch.setattr(runner, "stage", stage)
    p.start(batch([101]))
    p.stage(batch([201], [202]))  # never raises: the error waits for B's finish
    assert sums(p.finish()[1]) == [101.0]
    assert sums(p.finish()[1]) == [201.0, 202.0]  # split in halves, each run alone
    assert ("run", 201) in runner.log and ("run", 202) in runner.log


def test_on_the_cpu_each_batch_runs_in_a_row_with_nothing_staged_ahead(monkeypatch):
    runner = StepRunner("cpu")
    p = pipeline(runner, monkeypatch)
    p.start(batch([101], [102]))
    assert p.busy and not p.wants_next and runner.log == []
    _, outcomes, report = p.finish()
    assert sums(outcomes) == [101.0, 102.0] and not p.busy
    # BatchComputer.compute's calls, as before the pipeline: Runner.run (its three steps inside)
    assert runner.log == [("run", 101), ("stage", 101), ("launch", 101), ("collect", 101)]
    assert report.gpu_busy_s == 0.125
    with pytest.raises(AssertionError):
        p.stage(batch([201]))  # nothing is staged ahead on the CPU


def test_failures_keep_their_semantics_on_the_cpu(monkeypatch):
    runner = StepRunner("cpu")
    p = pipeline(runner, monkeypatch)
    p.start(batch([1], [POISON]))
    _, outcomes, _ = p.finish()
    assert sums(outcomes) == [1.0, "ModelFailure"]
    assert isinstance(outcomes[1][1], ModelFailure)
