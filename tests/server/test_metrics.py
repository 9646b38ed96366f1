"""Metrics are fed by the engine and the front-ends' hooks and rendered in Prometheus format."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from prometheus_client.parser import text_string_to_metric_families

from solution.server.compute.buckets import BucketGrid
from solution.server.compute.graphs import capture_eager
from solution.server.engine.batches import BatchReport
from solution.server.errors import Overloaded
from solution.server.metrics import Metrics


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.render().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_batches_requests_and_refusals_are_counted(engine):
    metrics = Metrics()
    metrics.attach(engine)
    overloaded = ("classifier_refused_total", (("reason", "overloaded"),))
    try:
        before = samples(metrics)  # the engine is shared: its counters include earlier tests'
        await engine.submit(["a", "b", "a"])  # an idle engine: one batch, two unique rows
        metrics.observe_request("http", "/process", "200", 0.01)
        with pytest.raises(Overloaded):
            await engine.submit(["x"] * (engine.limits.queue_texts + 1))
        got = samples(metrics)
    finally:
        engine.observers.remove(metrics.observe_batch)
    tokens = sum(max(len(f.encode([t])[0]) for f in engine.families) for t in ("a", "b"))
    assert got[("classifier_batch_texts_count", ())] == 1
    assert got[("classifier_batch_texts_sum", ())] == 3
    assert got[("classifier_batch_tokens_sum", ())] == tokens
    assert got[("classifier_model_compute_seconds_total", (("model", "cardiffnlp"),))] > 0
    assert (
        got[
            (
                "classifier_requests_total",
                (("protocol", "http"), ("route", "/process"), ("status", "200")),
            )
        ]
        == 1
    )
    assert (
        got[("classifier_request_seconds_count", (("protocol", "http"), ("route", "/process")))]
        == 1
    )
    assert got[overloaded] == before.get(overloaded, 0) + 1
    assert got[("classifier_queue_texts", ())] == 0
    assert got[("classifier_ready", ())] == 1


def report(**changes) -> BatchReport:
    fields = dict(
        texts=16,
        unique_texts=1,
        tokens=5,
        padding={"xlmr": 0.0, "roberta": 0.25},
        forward_calls=2,
        origins=Counter({"http": 16}),
        wall_s=0.01,
        model_gpu_seconds={"a": 0.004, "b": 0.003},
    )
    return BatchReport(**{**fields, **changes})  # type: ignore[arg-type]


def test_padding_is_observed_per_family_and_the_warm_up_batch_not_at_all():
    metrics = Metrics()
    metrics.observe_batch(report(warmup=True))
    assert ("classifier_batch_texts_count", ()) not in samples(metrics) or samples(metrics)[
        ("classifier_batch_texts_count", ())
    ] == 0
    metrics.observe_batch(report())
    got = samples(metrics)
    assert got[("classifier_batch_texts_count", ())] == 1
    assert got[("classifier_batch_padding_ratio_sum", (("family", "xlmr"),))] == 0.0
    assert got[("classifier_batch_padding_ratio_sum", (("family", "roberta"),))] == 0.25
    assert got[("classifier_model_compute_seconds_total", (("model", "a"),))] == 0.004


def calls(got, path: str) -> float:
    return got[("classifier_forward_calls_total", (("path", path),))]


async def test_forward_calls_are_counted_by_path_with_graphs_and_without(engine):
    """One text is one call per tokenizer family: five model calls (four XLM-R models share
    one family, RoBERTa is the other). With (CPU-emulated) graphs prepared they replay; with
    graphs off they run eager; /metrics says which, exactly."""
    metrics = Metrics()
    metrics.attach(engine)
    grid = BucketGrid(batch_sizes=(1, 2), lengths=(16, 64))
    try:
        assert calls(samples(metrics), "graph") == calls(samples(metrics), "eager") == 0
        report = await asyncio.to_thread(
            engine.runner.prepare, "on", max_rows=2, max_length=64, grid=grid, capture=capture_eager
        )
        assert report["graphs_per_model"] == 4
        await engine.submit(["replayed from a graph"])
        after_graphs = samples(metrics)
        await asyncio.to_thread(engine.runner.prepare, "off", max_rows=2, max_length=64)
        await engine.submit(["run eager"])
        after_eager = samples(metrics)
    finally:
        engine.observers.remove(metrics.observe_batch)
        engine.runner.prepare("off", max_rows=2, max_length=64)
    assert (calls(after_graphs, "graph"), calls(after_graphs, "eager")) == (5, 0)
    assert (calls(after_eager, "graph"), calls(after_eager, "eager")) == (5, 5)
    busy = after_eager[("classifier_gpu_busy_seconds_total", ())]
    assert 0 < busy <= after_eager[("classifier_batch_seconds_sum", ())]
    assert busy > after_graphs[("classifier_gpu_busy_seconds_total", ())] > 0
