"""The engine on the tiny stand-ins: parity with plain transformers, batching, admission,
failure isolation, deadlines. Fault injection wraps the real runner; no model is faked."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import torch

from solution.server.engine import BatchReport, Engine
from solution.server.errors import DeadlineExceeded, ModelFailure, Overloaded, ShuttingDown
from tests.conftest import ComputeGate, engine_queue_length, until

MIXED = [
    "",
    "This is how true happiness looks like 👍😜",
    "NUL\u0000 and controls \u0001\u0007\u001b\u001f end",
    "see https://t.co/AbCdEf12 and 1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
    "Это был лучший концерт 我今天很高兴 هذا أجمل يوم",
    "long " * 700,  # far beyond 512 tokens: truncated, never an error
    "🔥" * 50,
]


def plain_forward(engine: Engine, text: str) -> dict[str, tuple[str, float]]:
    """What transformers alone answers for one text: no batching, no padding."""
    out = {}
    for m in engine.models:
        enc = m.tokenizer(text, truncation=True, max_length=m.max_tokens, return_tensors="pt")
        with torch.inference_mode():
            probs = m.model(**enc).logits.float().softmax(-1)[0]
        index = int(probs.argmax())
        out[m.key] = (m.labels[index], float(probs[index]))
    return out


async def test_batched_results_equal_a_plain_forward_of_each_text_alone(engine: Engine):
    reports: list[BatchReport] = []
    engine.observers.append(reports.append)
    try:
        results = await engine.submit(MIXED)
    finally:
        engine.observers.remove(reports.append)
    assert any(r.texts == len(MIXED) for r in reports), "all texts should share one batch"
    for text, result in zip(MIXED, results, strict=True):
        assert list(result) == engine.keys  # configured order
        expected = plain_forward(engine, text)
        for key, prediction in result.items():
            label, score = expected[key]
            assert prediction.label == label, (key, text[:30])
            assert prediction.score == pytest.approx(score, abs=1e-4), (key, text[:30])


async def test_identical_texts_are_computed_once(engine: Engine):
    reports: list[BatchReport] = []
    engine.observers.append(reports.append)
    try:
        results = await engine.submit(["same", "same", "other", "same"])
    finally:
        engine.observers.remove(reports.append)
    assert reports[-1].texts == 4 and reports[-1].unique_texts == 2
    assert results[0] == results[1] == results[3]


async def test_concurrent_submits_share_batches(engine: Engine):
    reports: list[BatchReport] = []
    engine.observers.append(reports.append)
    try:
        with ComputeGate(engine) as gate:
            first = asyncio.ensure_future(engine.submit(["first"]))
            await until(gate.entered.is_set)  # the models are busy with "first"
            rest = [asyncio.ensure_future(engine.submit([f"text {i}"])) for i in range(20)]
            await until(lambda: engine_queue_length(engine) == 20)
            # tokenized ahead while the models are busy, but no batch cut yet
            await until(lambda: all(e.ids for e in list(engine._queue)))
            assert engine_queue_length(engine) == 20
            gate.release()
            await asyncio.wait_for(asyncio.gather(first, *rest), 10)
    finally:
        engine.observers.remove(reports.append)
    # cut when the models were free: one batch holds everything that queued meanwhile
    assert [r.texts for r in reports] == [1, 20]


@pytest.fixture
def failing_text(engine: Engine) -> Iterator[str]:
    """Make the runner raise whenever a batch contains the poisoned text."""
    poison = "poison ☠"
    poison_ids = engine.families[0].encode([poison])[0]
    real_run = engine.runner.run

    def run(work, n_rows):
        for call in work[0].calls:
            for row in call.input_ids.tolist():
                if row[: len(poison_ids)] == poison_ids:
                    raise RuntimeError("simulated model failure")
        return real_run(work, n_rows)

    engine.runner.run = run  # type: ignore[method-assign]
    yield poison
    engine.runner.run = real_run  # type: ignore[method-assign]


async def test_a_failing_text_fails_alone_and_the_engine_keeps_serving(engine, failing_text):
    reports: list[BatchReport] = []
    engine.observers.append(reports.append)
    try:
        good = [asyncio.ensure_future(engine.submit([f"fine {i}"])) for i in range(6)]
        bad = asyncio.ensure_future(engine.submit([failing_text]))
        done = await asyncio.wait_for(asyncio.gather(*good, bad, return_exceptions=True), 10)
    finally:
        engine.observers.remove(reports.append)
    assert isinstance(done[-1], ModelFailure)
    assert all(isinstance(r, list) and len(r) == 1 for r in done[:-1])
    assert sum(r.failed_texts for r in reports) == 1
    assert len(await engine.submit(["still serving"])) == 1


async def test_full_queue_refuses_at_once(engine: Engine):
    limit = engine.limits.queue_texts
    started = time.perf_counter()
    with pytest.raises(Overloaded):
        await engine.submit(["x"] * (limit + 1))
    assert time.perf_counter() - started < 0.05
    assert engine.queued_texts == 0  # nothing half-admitted


async def test_expired_deadline_is_dropped_before_compute(engine: Engine):
    reports: list[BatchReport] = []
    engine.observers.append(reports.append)
    try:
        with pytest.raises(DeadlineExceeded):
            await engine.submit(["too late"], deadline=time.monotonic() - 1)
    finally:
        engine.observers.remove(reports.append)
    assert sum(r.texts for r in reports) == 0  # no batch computed it
    assert engine.queued_texts == 0


async def test_cancelled_request_costs_no_compute(engine: Engine):
    reports: list[BatchReport] = []
    engine.observers.append(reports.append)
    try:
        with ComputeGate(engine) as gate:
            blocker, ahead = await gate.fill_pipeline()
            gone = asyncio.ensure_future(engine.submit(["client left"]))
            await until(lambda: engine_queue_length(engine) == 2)
            gone.cancel()
            gate.release()
            await asyncio.wait_for(asyncio.gather(blocker, ahead), 10)
            await until(lambda: engine.queued_texts == 0)
    finally:
        engine.observers.remove(reports.append)
    computed = sum(r.texts for r in reports)
    assert computed == 2  # blocker + the one queued before; the cancelled text never ran
    assert sum(r.dropped_texts for r in reports) == 1


async def test_empty_submit_returns_nothing(engine: Engine):
    assert await engine.submit([]) == []


async def test_draining_engine_refuses_new_work(settings):
    from solution.server.app import build_engine

    eng = await asyncio.to_thread(build_engine, settings)
    eng.start()
    await eng.warm_up(["warm"])
    pending = asyncio.ensure_future(eng.submit(["accepted before drain"]))
    await asyncio.sleep(0)
    assert await eng.drain(10) is True
    assert len(pending.result()) == 1  # accepted work finished
    with pytest.raises(ShuttingDown):
        await eng.submit(["after drain"])
    eng.stop()


async def test_out_of_memory_on_a_large_batch_is_split_until_it_fits(engine: Engine):
    """An OOM on more than two texts per call: halving the batch lets every text succeed."""
    real_run = engine.runner.run
    calls: list[int] = []

    def run(work, n_rows):
        calls.append(n_rows)
        if n_rows > 2:
            raise torch.cuda.OutOfMemoryError("simulated: CUDA out of memory")
        return real_run(work, n_rows)

    reports: list[BatchReport] = []
    engine.runner.run = run  # type: ignore[method-assign]
    engine.observers.append(reports.append)
    try:
        texts = [f"oom text {i}" for i in range(8)]
        results = await asyncio.wait_for(engine.submit(texts), 10)
    finally:
        engine.runner.run = real_run  # type: ignore[method-assign]
        engine.observers.remove(reports.append)
    assert len(results) == 8 and all(len(r) == 5 for r in results)
    assert calls[0] == 8 and max(calls[1:]) <= 4 and sorted(calls)[:4] == [2, 2, 2, 2]
    assert reports[-1].failed_texts == 0
    for split, whole in zip(results, await engine.submit(texts), strict=True):
        for key in whole:  # same answers as an unsplit batch
            assert split[key].label == whole[key].label
            assert split[key].score == pytest.approx(whole[key].score, abs=1e-5)


async def test_stop_answers_what_is_still_queued_with_shutting_down(settings):
    from solution.server.app import build_engine

    eng = await asyncio.to_thread(build_engine, settings)
    eng.start()
    await eng.warm_up(["warm"])
    with ComputeGate(eng) as gate:
        running, ahead = await gate.fill_pipeline()
        queued = asyncio.ensure_future(eng.submit(["still queued"]))
        await until(lambda: engine_queue_length(eng) == 2)
        stopping = asyncio.ensure_future(asyncio.to_thread(eng.stop))  # as the app calls it
        await until(lambda: engine_queue_length(eng) == 0)
        gate.release()
        await asyncio.wait_for(stopping, 30)
    for waiting in (ahead, queued):
        with pytest.raises(ShuttingDown):
            await asyncio.wait_for(waiting, 5)
    assert len(await running) == 1  # the batch in hand is finished
