"""The engine's threads on the tiny stand-ins: parity with plain transformers, batching,
admission, failure isolation, deadlines, supervision. Fault injection wraps the real runner or the
scheduler; no model is faked. The queue's rules themselves are tested without threads in
test_scheduler.py."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import torch

from solution.server.engine.batches import BatchReport
from solution.server.engine.engine import Engine
from solution.server.engine.entries import Entry, Lane, State, Submission
from solution.server.errors import DeadlineExceeded, ModelFailure, Overloaded, ShuttingDown
from tests.conftest import ComputeGate, entry_states, until
from tests.tolerances import FP32_SCORE_TOLERANCE

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
            await until(lambda: engine.waiting_texts == 20)
            # tokenized ahead while the models are busy, but no batch cut yet
            await until(lambda: entry_states(engine) == [State.TOKENIZED] * 20)
            assert engine.waiting_texts == 20
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
    assert engine.waiting_texts == 0  # nothing half-admitted


async def test_expired_deadline_is_dropped_before_compute(engine: Engine):
    await until(lambda: engine.idle)  # what an earlier test left is not this test's to judge
    reports: list[BatchReport] = []
    engine.observers.append(reports.append)
    try:
        with pytest.raises(DeadlineExceeded):
            await engine.submit(["too late"], deadline=time.monotonic() - 1)
        # answered at once; a text the tokenizer had already taken leaves when its ids arrive
        await until(lambda: engine.idle)
    finally:
        engine.observers.remove(reports.append)
    assert sum(r.texts for r in reports) == 0  # no batch computed it


async def test_a_request_answered_with_an_error_leaves_no_garbage_cycle(engine: Engine):
    """An error set on a request's future (expired, shed, failed) is raised through ``submit``,
    whose frame its traceback keeps: were that frame still holding the future, which holds the
    error, the request would wait for a full collection (a flood of them: hundreds of MiB)."""
    await until(lambda: engine.idle)
    gc.collect()
    gc.disable()
    try:
        with ComputeGate(engine) as gate:
            busy = asyncio.ensure_future(engine.submit(["keeps the models busy"]))
            await until(gate.entered.is_set)
            with pytest.raises(DeadlineExceeded):
                await engine.submit(["too late"], deadline=time.monotonic() + 0.05)
            gate.release()
            await busy
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        kept = [type(o).__name__ for o in gc.garbage if isinstance(o, Submission | Entry)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert kept == []


async def test_cancelled_request_costs_no_compute(engine: Engine):
    reports: list[BatchReport] = []
    engine.observers.append(reports.append)
    gone_before = engine.snapshot().dropped.get("client_gone", 0)
    try:
        with ComputeGate(engine) as gate:
            blocker, ahead = await gate.fill_pipeline()
            gone = asyncio.ensure_future(engine.submit(["client left"]))
            await until(lambda: engine.waiting_texts == 2)
            gone.cancel()
            # the cancellation reaches the scheduler on the loop's next turn: wait for it, or the
            # released compute thread may cut the text into a batch first
            await until(lambda: engine.waiting_texts == 1)
            gate.release()
            await asyncio.wait_for(asyncio.gather(blocker, ahead), 10)
            await until(lambda: engine.idle)
    finally:
        engine.observers.remove(reports.append)
    computed = sum(r.texts for r in reports)
    assert computed == 2  # blocker + the one queued before; the cancelled text never ran
    assert engine.snapshot().dropped.get("client_gone", 0) - gone_before == 1


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
            assert split[key].score == pytest.approx(whole[key].score, abs=FP32_SCORE_TOLERANCE)


async def test_stop_answers_what_is_still_queued_with_shutting_down(settings):
    from solution.server.app import build_engine

    eng = await asyncio.to_thread(build_engine, settings)
    eng.start()
    await eng.warm_up(["warm"])
    with ComputeGate(eng) as gate:
        running, ahead = await gate.fill_pipeline()
        queued = asyncio.ensure_future(eng.submit(["still queued"]))
        await until(lambda: eng.waiting_texts == 2)
        stopping = asyncio.ensure_future(asyncio.to_thread(eng.stop))  # as the app calls it
        await until(lambda: eng.waiting_texts == 0)
        gate.release()
        await asyncio.wait_for(stopping, 30)
    errors = []
    for waiting in (ahead, queued):
        with pytest.raises(ShuttingDown) as raised:
            await asyncio.wait_for(waiting, 5)
        errors.append(raised.value)
    assert errors[0] is not errors[1]  # one exception object per request, never shared
    assert len(await running) == 1  # the batch in hand is finished


# ---- defects found in review, each with the test that showed it ---------------------------------


async def test_cancelled_texts_leave_the_admission_budget_at_once(engine: Engine):
    """Ten cancelled 200-text requests used to hold 2,000 places until a batch reached them."""
    with ComputeGate(engine) as gate:
        blocker, ahead = await gate.fill_pipeline()
        gone = [
            asyncio.ensure_future(engine.submit([f"gone {i} {j}" for j in range(200)]))
            for i in range(10)
        ]
        await until(lambda: engine.waiting_texts == 1 + 2000)
        for request in gone:
            request.cancel()
        await until(lambda: engine.waiting_texts == 1)
        admitted = [
            asyncio.ensure_future(engine.submit([f"new {i} {j}" for j in range(200)]))
            for i in range(5)
        ]
        await asyncio.sleep(0)
        gate.release()
        results = await asyncio.wait_for(asyncio.gather(*admitted, blocker, ahead), 30)
    assert [len(r) for r in results] == [200] * 5 + [1, 1]  # none refused as overloaded


async def test_a_deadline_that_passes_while_queued_is_answered_when_it_passes(engine: Engine):
    """Not at the next batch cut, which may be far away behind a slow batch."""
    with ComputeGate(engine) as gate:
        blocker, ahead = await gate.fill_pipeline()
        late = asyncio.ensure_future(engine.submit(["late"], deadline=time.monotonic() + 0.2))
        with pytest.raises(DeadlineExceeded):
            await asyncio.wait_for(late, 5)
        assert not gate.gate.is_set()  # the models were still busy with the blocker
        assert engine.waiting_texts == 1  # only "queued first" is left
        gate.release()
        await asyncio.wait_for(asyncio.gather(blocker, ahead), 10)
    await until(lambda: engine.idle)


async def test_dropped_texts_leave_nothing_pending_so_a_drain_finishes_at_once(settings):
    """The old compute fallback forgot dropped texts: every later drain waited the whole grace."""
    eng = await _fresh_engine(settings)
    with ComputeGate(eng) as gate:
        blocker, ahead = await gate.fill_pipeline()
        late = asyncio.ensure_future(eng.submit(["late"], deadline=time.monotonic() + 0.05))
        gone = asyncio.ensure_future(eng.submit(["gone"]))
        await until(lambda: eng.waiting_texts == 3)
        gone.cancel()
        await until(late.done)
        gate.release()
        await asyncio.wait_for(asyncio.gather(blocker, ahead), 10)
    with pytest.raises(DeadlineExceeded):
        await late
    started = time.perf_counter()
    assert await eng.drain(20) is True
    assert time.perf_counter() - started < 1
    await asyncio.to_thread(eng.stop)


async def test_a_long_text_does_not_hold_up_anybody_elses_batch(engine: Engine, monkeypatch):
    """A megabyte-long text used to be tokenized on the thread that cuts every batch."""
    held = threading.Event()
    release = threading.Event()
    family = engine.families[0]
    real_encode = family.encode

    def slow_for_long_texts(texts):
        if any(len(t) > 100_000 for t in texts):
            held.set()
            release.wait(20)
        return real_encode(texts)

    monkeypatch.setattr(family, "encode", slow_for_long_texts)
    long_request = asyncio.ensure_future(engine.submit(["word " * 200_000]))
    try:
        assert await asyncio.to_thread(held.wait, 10)
        started = time.perf_counter()
        short = await asyncio.wait_for(engine.submit(["a tweet", "another tweet"]), 10)
        assert len(short) == 2 and time.perf_counter() - started < 5
        assert not long_request.done()
    finally:
        release.set()
    assert len(await asyncio.wait_for(long_request, 30)) == 1


async def test_a_long_text_is_answered_as_its_truncated_tokens(engine: Engine):
    whole = "Ce film était vraiment magnifique " * 20_000  # ~680 kB
    [long_result] = await engine.submit([whole])
    truncated = plain_forward(engine, whole)
    for key, prediction in long_result.items():
        assert prediction.label == truncated[key][0]
        assert prediction.score == pytest.approx(truncated[key][1], abs=1e-4)


async def test_padding_is_reported_per_tokenizer_family(engine: Engine):
    """It used to mix one family's real tokens with both families' padded positions: 0.41 for a
    batch of one text, 0.50 for sixteen identical ones, where nothing is padded."""
    reports: list[BatchReport] = []
    engine.observers.append(reports.append)
    try:
        await engine.submit(["one text alone"])
        await engine.submit(["same text"] * 16)
        await engine.submit(["short", "a much longer text than the other one, with many words"])
    finally:
        engine.observers.remove(reports.append)
    names = [f.name for f in engine.families]
    assert [sorted(r.padding) for r in reports] == [sorted(names)] * 3
    assert all(v == 0.0 for r in reports[:2] for v in r.padding.values())
    assert all(0.0 < v < 1.0 for v in reports[2].padding.values())


# ---- supervision: a dead worker is never a silent outage ----------------------------------------


async def _fresh_engine(settings) -> Engine:
    from solution.server.app import build_engine

    eng = await asyncio.to_thread(build_engine, settings)
    eng.start()
    await eng.warm_up(["warm"])
    return eng


class Fatal:
    """Collects what the engine reports to its ``on_fatal`` hook."""

    def __init__(self, eng: Engine):
        self.errors: list[BaseException] = []
        eng.on_fatal = self.errors.append


@pytest.mark.parametrize("where", ["tokenized", "finish"])
async def test_a_dead_worker_answers_everything_stops_and_reports(
    settings, monkeypatch, where, caplog
):
    eng = await _fresh_engine(settings)
    fatal = Fatal(eng)
    bug = RuntimeError(f"simulated bookkeeping bug in {where}")

    def broken(*args, **kwargs):
        raise bug

    monkeypatch.setattr(eng.scheduler, where, broken)
    requests = [asyncio.ensure_future(eng.submit([f"text {i}"])) for i in range(5)]
    done = await asyncio.wait_for(asyncio.gather(*requests, return_exceptions=True), 10)
    assert all(isinstance(r, ModelFailure) for r in done)
    assert len({id(r) for r in done}) == 5  # one exception object per request
    await until(lambda: fatal.errors == [bug])
    assert not eng.ready and eng.failure is bug
    with pytest.raises(ShuttingDown):
        await eng.submit(["after the failure"])
    assert [r.levelname for r in caplog.records if "worker failed" in r.getMessage()] == [
        "CRITICAL"
    ]
    await asyncio.to_thread(eng.stop)


async def test_a_fatal_device_error_is_not_retried_and_stops_the_engine(settings):
    """After a device-side assert every CUDA call fails: splitting and retrying the batch made
    2N-1 failing calls per batch, forever, with /ready at 200."""
    eng = await _fresh_engine(settings)
    fatal = Fatal(eng)
    calls: list[int] = []
    entered, go = threading.Event(), threading.Event()

    def run(work, n_rows):
        calls.append(n_rows)
        entered.set()
        go.wait(10)
        raise RuntimeError("CUDA error: device-side assert triggered")

    eng.runner.run = run  # type: ignore[method-assign]
    first = asyncio.ensure_future(eng.submit(["a", "b", "c", "d"]))
    assert await asyncio.to_thread(entered.wait, 10)
    queued = asyncio.ensure_future(eng.submit(["queued behind"]))
    await until(lambda: eng.waiting_texts == 1)
    go.set()
    done = await asyncio.wait_for(asyncio.gather(first, queued, return_exceptions=True), 10)
    assert all(isinstance(r, ModelFailure) for r in done)
    assert calls == [4]  # no split-and-retry
    await until(lambda: len(fatal.errors) == 1)
    assert not eng.ready
    await asyncio.to_thread(eng.stop)


# ---- the CUDA pipeline: the next batch staged while one computes --------------------------------


class CudaLooking:
    """The engine's real (CPU) runner, reporting a CUDA device so that the compute loop pipelines;
    logs ``(step, rows)`` per step, and ``hold(step)`` stops the compute thread once in it."""

    def __init__(self, runner: object):
        self.real = runner
        self.device = torch.device("cuda")
        self.log: list[tuple[str, int]] = []
        self.gates: dict[str, tuple[threading.Event, threading.Event]] = {}

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)  # models, max_labels, buckets, run

    def hold(self, step: str) -> tuple[threading.Event, threading.Event]:
        self.gates[step] = (threading.Event(), threading.Event())
        return self.gates[step]

    def _step(self, step: str, rows: int) -> None:
        self.log.append((step, rows))
        if step in self.gates:
            entered, go = self.gates.pop(step)
            entered.set()
            go.wait(10)

    def stage(self, work, n_rows):
        self._step("stage", n_rows)
        return self.real.stage(work, n_rows)  # type: ignore[attr-defined]

    def launch(self, staged):
        self._step("launch", staged.n_rows)
        return self.real.launch(staged)  # type: ignore[attr-defined]

    def collect(self, launched):
        self._step("collect", launched.staged.n_rows)
        return self.real.collect(launched)  # type: ignore[attr-defined]


async def _pipelined_engine(settings) -> tuple[Engine, CudaLooking]:
    from solution.server.app import build_engine

    eng = await asyncio.to_thread(build_engine, settings)
    runner = CudaLooking(eng.runner)
    eng.runner = eng.computer.runner = runner  # type: ignore[assignment]
    eng.start()
    await eng.warm_up(["warm"])
    return eng, runner


async def _a_launched_with_b_ready(eng: Engine, runner: CudaLooking, hold_collect: bool) -> tuple:
    """Batch A (two texts) held in its launch until B (one text) is tokenized, then released:
    the compute thread's look ahead cuts B. With ``hold_collect`` it is held again in A's collect
    (B staged by then)."""
    entered, go = runner.hold("launch")
    collect = runner.hold("collect") if hold_collect else None
    a = asyncio.ensure_future(eng.submit(["first batch, one", "first batch, two"]))
    assert await asyncio.to_thread(entered.wait, 10)
    b = asyncio.ensure_future(eng.submit(["second batch"]))
    await until(lambda: entry_states(eng) == [State.TOKENIZED])
    go.set()
    return a, b, collect


async def test_on_cuda_the_next_batch_is_staged_while_one_computes_with_the_same_answers(
    settings, engine: Engine
):
    eng, runner = await _pipelined_engine(settings)
    try:
        runner.log.clear()
        a, b, _ = await _a_launched_with_b_ready(eng, runner, hold_collect=False)
        got = await asyncio.wait_for(asyncio.gather(a, b), 10)
    finally:
        await asyncio.to_thread(eng.stop)
    assert runner.log == [
        ("stage", 2),
        ("launch", 2),
        ("stage", 1),  # B, while A computes
        ("collect", 2),
        ("launch", 1),  # B at once after A's collect
        ("collect", 1),
    ]
    want = await engine.submit(["first batch, one", "first batch, two", "second batch"])
    for result, expected in zip([*got[0], *got[1]], want, strict=True):
        for key in expected:  # the CPU engine's answers
            assert result[key].label == expected[key].label
            assert result[key].score == pytest.approx(expected[key].score, abs=FP32_SCORE_TOLERANCE)


async def test_stop_with_two_batches_in_hand_finishes_both(settings):
    eng, runner = await _pipelined_engine(settings)
    a, b, collect = await _a_launched_with_b_ready(eng, runner, hold_collect=True)
    assert collect is not None
    entered, go = collect
    assert await asyncio.to_thread(entered.wait, 10)  # A in its collect, B staged
    assert eng.snapshot().computing_texts == 3
    queued = asyncio.ensure_future(eng.submit(["still queued"]))
    await until(lambda: eng.waiting_texts == 1)
    stopping = asyncio.ensure_future(asyncio.to_thread(eng.stop))
    await until(lambda: eng.waiting_texts == 0)
    go.set()
    await asyncio.wait_for(stopping, 30)
    assert [len(r) for r in await asyncio.wait_for(asyncio.gather(a, b), 5)] == [2, 1]
    with pytest.raises(ShuttingDown):
        await asyncio.wait_for(queued, 5)
    assert eng.idle


def test_on_a_cpu_the_compute_thread_runs_after_the_event_loop(engine: Engine, settings):
    """The compute thread lowers its own priority (CLS_WORKER_NICE), not the process's: when
    cores are short, admission, refusals and answers on the loop go first."""
    loop_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    nice = {t.name: os.getpriority(os.PRIO_PROCESS, t.native_id or 0) for t in engine._threads}
    assert settings.worker_nice > 0
    assert nice == {
        "engine-tokenize-short": loop_nice,
        "engine-tokenize-long": loop_nice,
        "engine-compute": min(19, loop_nice + settings.worker_nice),
    }


class CountingWakeup(threading.Condition):
    """A worker's condition that counts how often its waiter woke."""

    def __init__(self, lock: threading.RLock, woken: Counter[str], name: str):
        super().__init__(lock)
        self.woken, self.name = woken, name

    def wait(self, timeout: float | None = None) -> bool:
        try:
            return super().wait(timeout)
        finally:
            self.woken[self.name] += 1


async def test_a_change_wakes_only_the_workers_it_gives_work_to(settings):
    """Short texts never wake the long lane's tokenizer, and a tokenized chunk does not wake the
    short lane's again (every wake-up takes the GIL from the thread serving requests); a long
    text wakes its lane's and is answered."""
    from solution.server.app import build_engine

    eng = await asyncio.to_thread(build_engine, settings)
    woken: Counter[str] = Counter()
    eng._tokenizer_wakeup = {lane: CountingWakeup(eng.lock, woken, lane.name) for lane in Lane}
    eng._compute_wakeup = CountingWakeup(eng.lock, woken, "compute")
    eng.start()
    try:
        await eng.warm_up(["warm"])
        before = woken.copy()
        for i in range(20):
            await eng.submit([f"tweet number {i}"])
        assert woken["LONG"] == before["LONG"]
        assert woken["SHORT"] - before["SHORT"] <= 20  # at most once per admitted text
        assert woken["compute"] > before["compute"]
        assert len(await asyncio.wait_for(eng.submit(["word " * 1000]), 30)) == 1
        assert woken["LONG"] > before["LONG"]
    finally:
        eng.stop()
