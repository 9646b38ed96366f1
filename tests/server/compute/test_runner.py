"""The runner on the tiny stand-ins: logits equal a plain forward of each text alone, through the
eager and the (CPU-emulated) graph path; the ordering of stream operations, recorded by a stand-in
for the stream API, also when a model raises mid-batch; no host sync in a forward; which errors
are fatal for the process; dtype choice."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from solution.server.compute import planning
from solution.server.compute import runner as runner_module
from solution.server.compute.buckets import BucketGrid
from solution.server.compute.families import Family, group_families
from solution.server.compute.graphs import capture_eager
from solution.server.compute.models import LoadedModel, load_model_specs, load_models
from solution.server.compute.runner import (
    FamilyWork,
    Runner,
    RunOutput,
    is_fatal_device_error,
)
from solution.server.compute.streams import Sequential
from solution.server.config import DEFAULT_MODEL_CONFIG

CPU = torch.device("cpu")
TEXTS = [
    "This is how true happiness looks like 👍😜",
    "",
    "NUL\u0000 and controls \u0001\u0007\u001b\u001f end",
    "see https://t.co/AbCdEf12 and 1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
    "Это был лучший концерт 我今天很高兴 هذا أجمل يوم",
    "ok",
    "a",
    "long " * 80,  # over the largest bucket's 64 tokens: runs eager on the graph path
]
SMALL_GRID = BucketGrid(batch_sizes=(1, 2), lengths=(16, 64), max_tokens=256)


@pytest.fixture(scope="module")
def models(standins_tiny: Path) -> list[LoadedModel]:
    specs = load_model_specs(DEFAULT_MODEL_CONFIG, str(standins_tiny))
    return load_models(specs, CPU, torch.float32, 512)


@pytest.fixture(scope="module")
def families(models: list[LoadedModel]) -> list[Family]:
    return group_families(
        [m.tokenizer for m in models], [m.key for m in models], [m.max_tokens for m in models]
    )


def alone(model: LoadedModel, text: str) -> torch.Tensor:
    """What transformers answers for one text: no batch, no padding, its own 2D mask."""
    enc = model.tokenizer(text, truncation=True, max_length=model.max_tokens, return_tensors="pt")
    with torch.inference_mode():
        logits: torch.Tensor = model.model(**enc).logits[0]
    return logits


def plan_all(
    families: list[Family],
    texts: list[str],
    max_texts: int = 3,
    buckets: planning.Buckets | None = None,
) -> planning.Plan:
    ids = [f.encode(texts) for f in families]
    return planning.plan(ids, families, range(len(texts)), 64, max_texts, buckets=buckets)


def assert_matches_alone(models: list[LoadedModel], out: RunOutput, texts: list[str]) -> None:
    assert out.logits.shape == (len(models), len(texts), max(out.num_labels))
    for m, model in enumerate(models):
        n = out.num_labels[m]
        for row, text in enumerate(texts):
            got = torch.from_numpy(out.logits[m, row, :n])
            torch.testing.assert_close(got, alone(model, text), rtol=1e-5, atol=1e-5)
        assert not out.logits[m, :, n:].any()  # label columns the model does not have


def test_logits_equal_a_forward_of_each_text_alone(models, families):
    plan = plan_all(families, TEXTS)
    assert plan.calls > len(families)  # several micro-batches per family
    out = Runner(models, CPU).run(plan.work, len(TEXTS))
    assert_matches_alone(models, out, TEXTS)
    assert len(out.gpu_seconds) == len(models) and all(s > 0 for s in out.gpu_seconds)
    assert 0 < out.enqueue_s <= out.wall_s


def test_member_subsets_compute_only_their_rows(models, families):
    """Two works for one family with different members: a row a model did not run stays 0."""
    xlmr = next(f for f in families if len(f.members) > 1)
    ids = [xlmr.encode(TEXTS)]
    first = planning.plan(ids, [xlmr], [0, 1, 2], 64, 8).work[0]
    second = planning.plan(ids, [xlmr], [3, 4], 64, 8).work[0]
    a, b = xlmr.members[0], xlmr.members[1]
    for call in second.calls:
        call.rows = call.rows + 3  # rows 3, 4 of the batch
    work = [FamilyWork([a], first.calls), FamilyWork([a, b], second.calls)]
    out = Runner(models, CPU).run(work, 5)
    for row in range(5):
        got = torch.from_numpy(out.logits[a, row, : out.num_labels[a]])
        torch.testing.assert_close(got, alone(models[a], TEXTS[row]), rtol=1e-5, atol=1e-5)
    assert not out.logits[b, :3].any() and out.logits[b, 3:].any()
    others = [m for m in range(len(models)) if m not in (a, b)]
    assert not out.logits[others].any()


class RecordingStreams(Sequential):
    """A stand-in for the CUDA stream API: fake streams, every ordering call recorded."""

    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []
        self.stack = ["main"]
        self.made = 0

    def new_stream(self) -> str:
        self.made += 1
        return f"s{self.made - 1}"

    def current(self) -> str:
        return "main"

    def wait(self, waiter: Any, producer: Any) -> None:
        self.log.append(("wait", waiter, producer))

    @contextmanager
    def use(self, stream: Any) -> Iterator[None]:
        self.log.append(("use", stream))
        self.stack.append(stream)
        try:
            yield
        finally:
            self.stack.pop()

    def keep(self, tensor: torch.Tensor, stream: Any) -> None:
        self.log.append(("keep", stream))

    def download(self, tensor: torch.Tensor) -> np.ndarray:
        self.log.append(("download",))
        return super().download(tensor)


def counting_replays(runner: Runner, log: list[Any], ops: RecordingStreams) -> None:
    """Wrap every captured forward's replay to record (model, shape, stream current at replay)."""
    for m, graphs in enumerate(runner.graphs):
        for shape, captured in graphs.items():
            replay = captured.replay

            def counted(m: int = m, shape: Any = shape, replay: Any = replay) -> None:
                log.append((m, shape, ops.stack[-1]))
                replay()

            captured.replay = counted


class Raises(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner
        self.config = inner.config

    def forward(self, **kwargs: Any) -> Any:
        raise RuntimeError("model failed mid-batch")


def test_a_model_failing_mid_batch_leaves_main_waiting_on_every_stream(models, families):
    broken = [dataclasses.replace(m) for m in models]
    broken[2] = dataclasses.replace(models[2], model=Raises(models[2].model))
    ops = RecordingStreams()
    runner = Runner(broken, CPU, ops=ops)
    with pytest.raises(RuntimeError, match="mid-batch"):
        runner.run(plan_all(families, TEXTS).work, len(TEXTS))
    assert ("use", "s1") in ops.log  # models before the failing one had work queued...
    failed_at = ops.log.index(("use", "s2"))
    after = ops.log[failed_at:]
    # ...and before the error leaves the runner, main waits on every model's stream
    assert {("wait", "main", s) for s in runner.streams} <= set(after)
    assert ("download",) not in ops.log


def test_streams_wait_for_the_inputs_and_main_for_the_streams_before_the_copy(models, families):
    ops = RecordingStreams()
    runner = Runner(models, CPU, ops=ops)
    runner.run(plan_all(families, TEXTS).work, len(TEXTS))
    first_use = next(i for i, e in enumerate(ops.log) if e[0] == "use")
    assert {("wait", s, "main") for s in runner.streams} <= set(ops.log[:first_use])
    download = ops.log.index(("download",))
    last_use = max(i for i, e in enumerate(ops.log) if e[0] == "use")
    joins = {("wait", "main", s) for s in runner.streams}
    assert joins <= set(ops.log[last_use:download])
    # every input a stream reads is kept alive for that stream
    assert {e[1] for e in ops.log if e[0] == "keep"} == set(runner.streams)


def test_graph_path_gives_the_logits_of_each_text_alone_on_the_models_own_stream(models, families):
    """Through the graph path's static buffers (replayed eagerly here) with a bucket replayed
    twice in one batch: a second replay before the first output is read would show. Every replay
    runs on its model's stream, which is what keeps a static buffer from being overwritten while a
    replay may still read it (stream order, not host timing)."""
    ops = RecordingStreams()
    runner = Runner(models, CPU, ops=ops)
    report = runner.prepare("on", max_rows=2, max_length=64, grid=SMALL_GRID, capture=capture_eager)
    assert report["graphs_per_model"] == len(SMALL_GRID.shapes(2, 64)) > 0
    replays: list[Any] = []
    counting_replays(runner, replays, ops)
    plan = plan_all(families, TEXTS, max_texts=2, buckets=runner.buckets)
    out = runner.run(plan.work, len(TEXTS))
    assert_matches_alone(models, out, TEXTS)
    shapes = [shape for m, shape, _ in replays if m == 0]
    assert len(set(shapes)) < len(shapes)  # a bucket replayed twice
    assert all(stream == runner.streams[m] for m, _, stream in replays)
    # the long text ran eager, every other call in a graph: and so they are counted
    calls = [(c, len(w.members)) for w in plan.work for c in w.calls]
    in_graphs = sum(n for c, n in calls if c.bucket is not None)
    assert [c.real_rows for c, _ in calls if c.bucket is None] == [1, 1]  # per family
    assert len(replays) == in_graphs == out.graph_calls
    assert out.eager_calls == sum(n for c, n in calls if c.bucket is None) == len(models)
    # a plan made without the buckets runs eager on the same runner
    eager_work = plan_all(families, TEXTS, max_texts=2).work
    eager = runner.run(eager_work, len(TEXTS))
    assert eager.graph_calls == 0
    assert eager.eager_calls == sum(len(w.members) * len(w.calls) for w in eager_work)
    np.testing.assert_allclose(eager.logits, out.logits, rtol=1e-5, atol=1e-5)


class ScalarReads(TorchDispatchMode):
    """Ops that read a device value on the host (a sync on CUDA): ``bool(t)``, ``.item()``,
    data-dependent shapes. Seen here on the CPU, where they cost nothing, to keep them out."""

    SYNCING = ("is_nonzero", "_local_scalar_dense", "item", "nonzero", "masked_select")

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if any(name in str(func) for name in self.SYNCING):
            self.seen.append(str(func))
        return func(*args, **(kwargs or {}))


def test_a_batch_reads_nothing_back_before_its_one_copy(models, families):
    runner = Runner(models, CPU)
    work = plan_all(families, TEXTS).work
    with ScalarReads() as reads:
        runner.run(work, len(TEXTS))
    assert reads.seen == []
    # the probe does see the sync a 2D mask costs (transformers' `padding_mask.all()`)
    call = work[0].calls[0]
    ids, mask = torch.from_numpy(call.input_ids), torch.from_numpy(call.attention_mask)
    with torch.inference_mode(), ScalarReads() as reads:
        models[0].model(input_ids=ids, attention_mask=mask.long())
    assert "aten.is_nonzero.default" in reads.seen


@pytest.mark.parametrize("index", range(5))
def test_the_4d_boolean_mask_gives_the_logits_of_the_2d_one(models, families, index):
    family = next(f for f in families if index in f.members)
    call = planning.plan([family.encode(TEXTS)], [family], range(len(TEXTS)), 4096, 16)
    first = call.work[0].calls[0]
    ids, mask = torch.from_numpy(first.input_ids), torch.from_numpy(first.attention_mask).long()
    assert (mask == 0).any()  # padding to mask
    model = models[index].model
    with torch.inference_mode():
        two = model(input_ids=ids, attention_mask=mask).logits
        four = model(input_ids=ids, attention_mask=mask.bool()[:, None, None, :]).logits
    torch.testing.assert_close(four, two, rtol=1e-6, atol=1e-6)


def test_graph_modes_on_the_cpu(models):
    runner = Runner(models, CPU)
    with pytest.raises(ValueError, match="CLS_CUDA_GRAPHS='sometimes'"):
        runner.prepare("sometimes", max_rows=4, max_length=64)
    with pytest.raises(ValueError, match="no CUDA device"):
        runner.prepare("on", max_rows=4, max_length=64)
    assert runner.prepare("auto", max_rows=4, max_length=64)["reason"] == "no CUDA device"
    assert runner.prepare("off", max_rows=4, max_length=64)["graphs_per_model"] == 0
    assert runner.shapes == []


def test_capture_stops_at_its_time_budget(models):
    runner = Runner(models, CPU)
    report = runner.prepare(
        "on", max_rows=2, max_length=64, grid=SMALL_GRID, capture=capture_eager, time_budget_s=0
    )
    assert report["stopped_by"] == "time"
    assert report["graphs_per_model"] + report["skipped"] == len(SMALL_GRID.shapes(2, 64))
    assert report["graphs_per_model"] <= 1  # the budget is checked between shapes


def test_a_failed_capture_runs_eager_under_auto_and_stops_the_start_under_on(models, families):
    def failing(*args: Any) -> Any:
        raise RuntimeError("operation not permitted when stream is capturing")

    runner = Runner(models, CPU)
    report = runner.prepare("auto", max_rows=4, max_length=64, capture=failing)
    assert "capture failed" in report["reason"] and runner.shapes == []
    assert_matches_alone(models, runner.run(plan_all(families, TEXTS).work, len(TEXTS)), TEXTS)
    with pytest.raises(RuntimeError, match="capturing"):
        runner.prepare("on", max_rows=4, max_length=64, capture=failing)


ACCELERATOR_ERROR = getattr(torch, "AcceleratorError", RuntimeError)


@pytest.mark.parametrize(
    "exc, fatal",
    [
        (ACCELERATOR_ERROR("CUDA error: device-side assert triggered"), True),
        (ACCELERATOR_ERROR("CUDA error: an illegal memory access was encountered"), True),
        (RuntimeError("CUDA error: an illegal memory access was encountered"), True),
        (RuntimeError("CUDA error: unspecified launch failure"), True),
        (RuntimeError("CUBLAS_STATUS_EXECUTION_FAILED when calling cublasGemmEx"), True),
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), False),
        (ACCELERATOR_ERROR("CUDA error: out of memory"), False),
        (RuntimeError("mat1 and mat2 shapes cannot be multiplied"), False),
        (ValueError("illegal memory access"), False),  # not a runtime error of torch
    ],
)
def test_which_errors_are_fatal(exc: BaseException, fatal: bool):
    assert is_fatal_device_error(exc) is fatal


def test_a_fatal_error_is_found_behind_a_wrapper():
    try:
        try:
            raise RuntimeError("CUDA error: device-side assert triggered")
        except RuntimeError as inner:
            raise ValueError("batch failed") from inner
    except ValueError as outer:
        assert is_fatal_device_error(outer)


def test_the_next_batch_staged_while_one_is_launched_gives_both_their_own_results(models, families):
    """The engine's pipelined order: launch a batch, stage the next, collect the first. Each
    batch's inputs live in their own buffer; the results match each text alone."""
    runner = Runner(models, CPU)
    runner.prepare("on", max_rows=2, max_length=64, grid=SMALL_GRID, capture=capture_eager)
    first, second = TEXTS[:4], TEXTS[4:]
    plans = [plan_all(families, t, max_texts=2, buckets=runner.buckets) for t in (first, second)]
    launched = runner.launch(runner.stage(plans[0].work, len(first)))
    staged = runner.stage(plans[1].work, len(second))
    out_first = runner.collect(launched)
    out_second = runner.collect(runner.launch(staged))
    assert_matches_alone(models, out_first, first)
    assert_matches_alone(models, out_second, second)
    for out, plan in zip((out_first, out_second), plans, strict=True):
        calls = [(c, len(w.members)) for w in plan.work for c in w.calls]
        assert out.graph_calls == sum(n for c, n in calls if c.bucket is not None) > 0
        assert out.eager_calls == sum(n for c, n in calls if c.bucket is None)
    assert out_first.stage_s > 0 and out_first.gpu_busy_s > 0


def test_start_up_can_time_the_buckets_for_a_measured_cost_table(models, monkeypatch):
    runner = Runner(models, CPU)
    monkeypatch.setattr(runner_module, "COST_TIME_BUDGET_S", 600.0)
    report = runner.prepare(
        "on", max_rows=2, max_length=64, grid=SMALL_GRID, capture=capture_eager, measure=True
    )
    costs = runner.buckets.costs
    assert costs.measured and set(costs.replay_s) == set(runner.shapes)
    assert report["costs"]["measured"] is True
    assert report["costs"]["timed_shapes"] == len(runner.shapes)
    # a spent budget still times one shape; the others come from the line
    monkeypatch.setattr(runner_module, "COST_TIME_BUDGET_S", 0.0)
    report = runner.prepare(
        "on", max_rows=2, max_length=64, grid=SMALL_GRID, capture=capture_eager, measure=True
    )
    assert report["costs"]["timed_shapes"] == 1 and runner.buckets.costs.measured
    assert set(runner.buckets.costs.replay_s) == set(runner.shapes)
    # without measuring (the CPU's default), the default table, and no time spent on it
    report = runner.prepare("on", max_rows=2, max_length=64, grid=SMALL_GRID, capture=capture_eager)
    assert not runner.buckets.costs.measured and report["costs"]["measured"] is False
    assert "timed_shapes" not in report["costs"]
