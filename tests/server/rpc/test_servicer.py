"""The gRPC front-end: statuses, deadlines, health and reflection, batching with HTTP, and its
wiring in ``App``. Fault injection: a fake engine for the error table and the lifecycle, the real
engine held by ``gate`` (conftest) where timing matters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
import orjson
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from solution.client import AsyncGrpcClient, AsyncHttpClient
from solution.proto.classifier.v1 import ERROR_METADATA_KEY
from solution.proto.classifier.v1 import classifier_pb2 as pb
from solution.proto.classifier.v1 import classifier_pb2_grpc as pb_grpc
from solution.server import app as app_module
from solution.server import config, errors
from solution.server.app import App
from solution.server.compute.scoring import Prediction
from solution.server.engine.engine import Engine
from solution.server.engine.entries import Snapshot
from solution.server.engine.options import Options
from solution.server.http.protocol import Request
from solution.server.http.routes import Routes
from solution.server.rpc.servicer import ERROR_STATUS, SERVICE_NAME, GrpcFrontend
from tests.conftest import bound_service, service_errors, until
from tests.tolerances import FP32_SCORE_TOLERANCE

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class FakeEngine:
    """What the front-end and ``App`` use of an engine; ``submit`` raises ``error`` when set."""

    def __init__(self, error: errors.ServiceError | None = None):
        self.error = error
        self.deadlines: list[float | None] = []
        self.clients: list[object] = []
        self.ready = True
        self.accepting = True
        self.warm = asyncio.Event()  # warm_up waits for it
        self.drained = asyncio.Event()  # drain waits for it
        self.observers: list[object] = []  # what Metrics.attach reads

    def snapshot(self) -> Snapshot:  # what the metrics collector reads
        return Snapshot(self.ready, self.accepting, 0, 0, {}, {})

    def start(self) -> None:
        self.ready = False

    async def warm_up(self, texts: list[str]) -> None:
        await self.warm.wait()
        self.ready = True

    async def drain(self, grace_s: float) -> bool:
        self.accepting = self.ready = False
        await self.drained.wait()
        return True

    def stop(self) -> None:
        pass

    async def submit(
        self,
        texts: list[str],
        *,
        deadline: float | None = None,
        options: object = None,
        origin: str = "",
        client: object = None,
    ) -> list[dict[str, Prediction]]:
        self.deadlines.append(deadline)
        self.clients.append(client)
        if self.error is not None:
            raise self.error
        if not self.accepting:
            raise errors.ShuttingDown("the service is shutting down")
        if not self.ready:
            raise errors.NotReady("models are still loading")
        return [{"first": Prediction(0.75, text), "second": Prediction(0.5, "B")} for text in texts]


@pytest.fixture
def fake() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
async def fake_channel(
    fake: FakeEngine, settings: config.Settings
) -> AsyncIterator[grpc.aio.Channel]:
    """A gRPC front-end on ``fake``, and a channel to it."""
    frontend = GrpcFrontend(bound_service(fake), settings.replace(grpc_port=0))
    await frontend.start()
    try:
        async with grpc.aio.insecure_channel(f"{settings.host}:{frontend.port}") as channel:
            yield channel
    finally:
        await frontend.stop(0)


@pytest.fixture
async def channel(frontends) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(frontends.grpc_target) as ch:
        yield ch


def test_every_service_error_has_a_status():
    assert set(ERROR_STATUS) == service_errors()


@pytest.mark.parametrize(
    "error, code", ERROR_STATUS.items(), ids=[e.__name__ for e in ERROR_STATUS]
)
async def test_each_engine_error_is_answered_with_its_status(
    fake: FakeEngine, fake_channel: grpc.aio.Channel, error, code
):
    fake.error = error("why it failed")
    for call, request in [
        (pb_grpc.ClassifierStub(fake_channel).Classify, pb.ClassifyRequest(text="x")),
        (pb_grpc.ClassifierStub(fake_channel).ClassifyBatch, pb.ClassifyBatchRequest(texts=["x"])),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(request, timeout=5)
        assert info.value.code() == code
        assert info.value.details() == "why it failed"
        assert (ERROR_METADATA_KEY, error.__name__) in tuple(info.value.trailing_metadata())


async def test_the_client_deadline_becomes_the_engine_deadline(
    fake: FakeEngine, fake_channel: grpc.aio.Channel
):
    stub = pb_grpc.ClassifierStub(fake_channel)
    before = time.monotonic()
    await stub.Classify(pb.ClassifyRequest(text="x"), timeout=5)
    await stub.ClassifyBatch(pb.ClassifyBatchRequest(texts=["x"]))
    with_deadline, without = fake.deadlines
    assert with_deadline is not None and with_deadline - before == pytest.approx(5, abs=0.5)
    assert without is None


async def test_results_keep_model_order_for_every_text(frontends, channel, engine: Engine):
    stub = pb_grpc.ClassifierStub(channel)
    one = await stub.Classify(pb.ClassifyRequest(text=""), timeout=10)  # the empty text is valid
    assert [p.model for p in one.result.predictions] == engine.keys
    assert all(0 < p.score <= 1 and p.label for p in one.result.predictions)
    texts = ["", "emoji 👍😜", "NUL\u0000\u001f", "https://t.co/x 1BvBMSEYstWetqTFn5Au4m4GFg7xJ"]
    many = await stub.ClassifyBatch(pb.ClassifyBatchRequest(texts=texts), timeout=10)
    assert len(many.results) == len(texts)
    first = many.results[0].predictions  # in request order: the empty text first
    assert [p.label for p in first] == [p.label for p in one.result.predictions]
    # another batch shape, so the float32 sums may differ in the last bits
    assert [p.score for p in first] == pytest.approx(
        [p.score for p in one.result.predictions], abs=FP32_SCORE_TOLERANCE
    )
    empty = await stub.ClassifyBatch(pb.ClassifyBatchRequest(), timeout=10)
    assert list(empty.results) == []


async def test_bad_input_is_invalid_argument(frontends, channel, settings: config.Settings):
    stub = pb_grpc.ClassifierStub(channel)
    too_many = pb.ClassifyBatchRequest(texts=["x"] * (settings.max_texts_per_request + 1))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ClassifyBatch(too_many, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"at most {settings.max_texts_per_request} texts" in info.value.details()

    raw = channel.unary_unary(f"/{SERVICE_NAME}/Classify")  # bytes in, bytes out
    not_utf8 = b"\x0a\x02\xff\xfe"  # field 1 (text), 2 bytes that are not UTF-8
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await raw(not_utf8, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "UTF-8" in info.value.details()


async def test_a_deadline_shorter_than_the_batch_is_dropped_before_compute(
    frontends, channel, engine: Engine, gate, reports
):
    await gate.close()  # the engine is busy with a batch until the gate opens
    stub = pb_grpc.ClassifierStub(channel)
    timeout = 1.0
    call = stub.Classify(pb.ClassifyRequest(text="too late"), timeout=timeout)
    await gate.queued(1)
    # The server received the call before now, so its deadline (receipt + timeout) is before
    # this; the client's own deadline fires a little earlier, by the call's transit time.
    server_deadline_bound = time.monotonic() + timeout + 0.01
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await asyncio.sleep(server_deadline_bound - time.monotonic())
    await gate.open()
    await reports.wait_for(lambda r: r.origins["gate"] > 0)
    await gate.idle()  # the expired text is answered (dropped) too
    assert sum(r.origins["grpc"] for r in reports) == 0, "the expired text was computed"


async def test_http_and_grpc_requests_share_batches(frontends, gate, reports):
    async with (
        AsyncHttpClient(frontends.http_target) as http_client,
        AsyncGrpcClient(frontends.grpc_target) as grpc_client,
    ):
        await gate.close()
        calls = [
            asyncio.ensure_future(http_client.classify_batch(["over http", "and again"])),
            asyncio.ensure_future(grpc_client.classify_batch(["over grpc", "and again"])),
        ]
        await gate.queued(4)
        await gate.open()
        async with asyncio.timeout(10):
            via_http, via_grpc = await asyncio.gather(*calls)
    shared = await reports.wait_for(lambda r: r.origins["http"] + r.origins["grpc"] > 0)
    # (the gate's marker may share it too: the compute thread, at a lower priority, can wake
    # after the tokenizer has caught up with every text)
    assert shared.origins["http"] == 2 and shared.origins["grpc"] == 2
    # "and again" is computed once for both front-ends
    assert shared.unique_texts == 3 + shared.origins["gate"]
    assert via_http[1] == via_grpc[1]


async def test_health_and_reflection(frontends, channel):
    health = health_pb2_grpc.HealthStub(channel)
    for name in ("", SERVICE_NAME):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
        assert answer.status == SERVING

    stream = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(timeout=5)
    await stream.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    await stream.done_writing()
    answer = await stream.read()
    names = {s.name for s in answer.list_services_response.service}
    assert {SERVICE_NAME, "grpc.health.v1.Health"} <= names


async def test_a_port_in_use_fails_start_up(frontends, engine: Engine, settings):
    taken = int(frontends.grpc_target.rsplit(":", 1)[1])
    second = GrpcFrontend(bound_service(engine), settings.replace(grpc_port=taken))
    with pytest.raises(OSError, match=f"gRPC cannot listen on {settings.host}:{taken}"):
        await second.start()


async def test_app_reports_health_from_loading_to_serving_to_draining(
    settings: config.Settings, monkeypatch: pytest.MonkeyPatch
):
    """``App`` wiring: NOT_SERVING until warm-up ends, SERVING, NOT_SERVING while draining (the
    server still answers then, and refuses work UNAVAILABLE), stopped at the end."""
    fake = FakeEngine()
    monkeypatch.setattr(app_module, "build_engine", lambda s: fake)
    app = App(settings.replace(enable_http=False, grpc_port=0))
    starting = asyncio.ensure_future(app.start())
    async with asyncio.timeout(20):
        while app.grpc is None or app.grpc.server is None:
            await asyncio.sleep(0.005)
        channel = grpc.aio.insecure_channel(f"{settings.host}:{app.grpc.port}")
        health = health_pb2_grpc.HealthStub(channel)
        classify = pb_grpc.ClassifierStub(channel).Classify
        watch = health.Watch(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
        try:
            assert (await watch.read()).status == NOT_SERVING
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await classify(pb.ClassifyRequest(text="x"))
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # NotReady

            fake.warm.set()
            await starting
            assert (await watch.read()).status == SERVING
            assert (await classify(pb.ClassifyRequest(text="x"))).result.predictions

            stopping = asyncio.ensure_future(app.shutdown())
            assert (await watch.read()).status == NOT_SERVING
            check = await health.Check(health_pb2.HealthCheckRequest(service=""))
            assert check.status == NOT_SERVING
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await classify(pb.ClassifyRequest(text="x"))
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # ShuttingDown
            assert "shutting down" in info.value.details()
        finally:
            watch.cancel()
            fake.warm.set()
            fake.drained.set()
        await stopping
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # nobody listens any more
        await channel.close()


async def test_every_call_is_observed_with_its_status_a_cancelled_one_too(
    engine: Engine, settings: config.Settings, gate
):
    """Cancelled calls used to be counted as OK."""
    seen: list[tuple[str, str, str]] = []
    service = bound_service(engine, observe=lambda p, r, s, _: seen.append((p, r, s)))
    frontend = GrpcFrontend(service, settings.replace(grpc_port=0))
    await frontend.start()
    try:
        async with grpc.aio.insecure_channel(f"{settings.host}:{frontend.port}") as channel:
            stub = pb_grpc.ClassifierStub(channel)
            await stub.Classify(pb.ClassifyRequest(text="answered"), timeout=10)
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.ClassifyBatch(pb.ClassifyBatchRequest(texts=["x"] * 300), timeout=10)
            await gate.close()  # held: the next call waits until its client gives up
            call = stub.Classify(pb.ClassifyRequest(text="the client cancels"), timeout=10)
            await gate.queued(1)
            call.cancel()
            await until(lambda: len(seen) == 3)
    finally:
        await gate.open()
        await frontend.stop(0)
    assert seen == [
        ("grpc", "Classify", "OK"),
        ("grpc", "ClassifyBatch", "INVALID_ARGUMENT"),
        ("grpc", "Classify", "CANCELLED"),
    ]


# ---- per-request options and ListModels -------------------------------------------------------


async def test_options_over_grpc_answer_as_the_engine_does(frontends, channel, engine: Engine):
    stub = pb_grpc.ClassifierStub(channel)
    texts = ["Ce film est magnifique", "FREE bitcoin, click here"]
    options = pb.Options(models=["jy46604790", "ivanlau"], top_k=3)
    reply = await stub.ClassifyBatch(
        pb.ClassifyBatchRequest(texts=texts, options=options), timeout=10
    )
    expected = await engine.submit(
        texts, options=Options(models=("ivanlau", "jy46604790"), top_k=3)
    )
    for result, want in zip(reply.results, expected, strict=True):
        assert [p.model for p in result.predictions] == ["ivanlau", "jy46604790"]
        assert [r.model for r in result.rankings] == ["ivanlau", "jy46604790"]
        for ranking in result.rankings:
            ranked = want[ranking.model]
            assert isinstance(ranked, list)
            assert [x.label for x in ranking.labels] == [p.label for p in ranked]
            assert [x.score for x in ranking.labels] == pytest.approx(
                [p.score for p in ranked], abs=FP32_SCORE_TOLERANCE
            )
        assert [p.label for p in result.predictions] == [r.labels[0].label for r in result.rankings]

    every = await stub.Classify(
        pb.ClassifyRequest(text="x", options=pb.Options(top_k=0, raw_scores=True)), timeout=10
    )
    raw = await engine.submit(["x"], options=Options(top_k=None, raw_scores=True))
    assert [len(r.labels) for r in every.result.rankings] == [len(m.labels) for m in engine.models]
    for ranking in every.result.rankings:
        assert [x.score for x in ranking.labels] == pytest.approx(
            [p.score for p in raw[0][ranking.model]],  # type: ignore[union-attr]
            abs=FP32_SCORE_TOLERANCE,
        )
    # no options, or empty ones: the v1 answer, without rankings
    plain = await stub.Classify(pb.ClassifyRequest(text="x", options=pb.Options()), timeout=10)
    assert [p.model for p in plain.result.predictions] == engine.keys
    assert not plain.result.rankings


@pytest.mark.parametrize(
    "options, message",
    [
        (pb.Options(models=["nope"]), "models: unknown model 'nope'; the models are cardiffnlp"),
        (pb.Options(top_k=-1), "top_k: expected 0 (every label) or a count, got -1"),
        (pb.Options(top_k=5000), "top_k: 5000 is not a count"),
        (pb.Options(models=["ivanlau", "ivanlau"]), "each model may be named once"),
        (pb.Options(truncate=False), " tokens; cardiffnlp, ivanlau, svalabs, EIStakovskii accept"),
    ],
)
async def test_bad_options_are_invalid_argument_naming_the_field(
    frontends, channel, options, message
):
    stub = pb_grpc.ClassifierStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Classify(pb.ClassifyRequest(text="mot " * 700, options=options), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in info.value.details()
    assert (ERROR_METADATA_KEY, "InvalidInput") in tuple(info.value.trailing_metadata())


async def test_list_models_answers_what_get_models_does(frontends, channel, engine: Engine):
    reply = await pb_grpc.ClassifierStub(channel).ListModels(pb.ListModelsRequest(), timeout=10)
    http = await Routes(bound_service(engine))(Request("GET", "/models", [], b"", True))
    described = orjson.loads(http.body)["models"]
    assert [m.key for m in reply.models] == engine.keys
    for info, want in zip(reply.models, described, strict=True):
        got = {f.name: getattr(info, f.name) for f in pb.ModelInfo.DESCRIPTOR.fields}
        assert {**got, "labels": list(info.labels)} == want
