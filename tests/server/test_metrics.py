"""Metrics are fed by the engine and the front-ends' hooks and rendered in Prometheus format."""

from __future__ import annotations

from collections import Counter

import pytest
from prometheus_client.parser import text_string_to_metric_families

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
