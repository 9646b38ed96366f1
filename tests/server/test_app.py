"""``App`` wiring that no single front-end owns: a failed engine stops the whole service."""

from __future__ import annotations

import asyncio
import gc

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from solution.proto.classifier.v1 import ERROR_METADATA_KEY
from solution.proto.classifier.v1 import classifier_pb2 as pb
from solution.proto.classifier.v1 import classifier_pb2_grpc as pb_grpc
from solution.server import config
from solution.server.app import App
from solution.server.rpc.servicer import SERVICE_NAME

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def test_a_dead_engine_worker_fails_pending_calls_turns_unhealthy_and_exits_non_zero(
    settings: config.Settings, monkeypatch: pytest.MonkeyPatch
):
    app = App(settings.replace(enable_http=False, grpc_port=0, shutdown_grace_s=5))
    async with asyncio.timeout(60):
        await app.start()
    assert app.engine is not None and app.grpc is not None
    channel = grpc.aio.insecure_channel(f"{settings.host}:{app.grpc.port}")
    watch = health_pb2_grpc.HealthStub(channel).Watch(
        health_pb2.HealthCheckRequest(service=SERVICE_NAME)
    )
    try:
        assert (await watch.read()).status == SERVING

        def broken(*args: object) -> None:
            raise RuntimeError("simulated bookkeeping bug")

        monkeypatch.setattr(app.engine.scheduler, "tokenized", broken)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await pb_grpc.ClassifierStub(channel).Classify(pb.ClassifyRequest(text="x"), timeout=10)
        assert info.value.code() == grpc.StatusCode.INTERNAL
        assert (ERROR_METADATA_KEY, "ModelFailure") in tuple(info.value.trailing_metadata() or ())
        async with asyncio.timeout(10):
            assert (await watch.read()).status == NOT_SERVING
            await app.stopped.wait()
    finally:
        watch.cancel()
        await channel.close()
    assert app.exit_code == 1
    assert not app.engine.ready


async def test_after_warm_up_the_heap_is_frozen_out_of_the_collectors_sight(
    settings: config.Settings,
):
    """Start-up's objects (models, modules: hundreds of thousands) are never garbage: frozen,
    a full collection under load scans only what requests made (0.15-0.2 s pauses otherwise)."""
    app = App(settings.replace(enable_http=False, grpc_port=0), freeze_heap=True)
    try:
        async with asyncio.timeout(60):
            await app.start()
        assert gc.get_freeze_count() > 100_000
    finally:
        gc.unfreeze()  # this test process starts other apps, whose garbage must stay collectable
        await app.shutdown()
    assert App(settings).freeze_heap is False  # what tests build: nothing frozen


def test_the_process_exit_code_is_the_apps(monkeypatch: pytest.MonkeyPatch):
    """``python -m solution.server`` exits 1 after an engine failure (a restart is wanted), and
    asks its app to freeze the heap after warm-up."""
    from solution.server import __main__ as entry
    from solution.server import app as app_module

    class FailedApp:
        def __init__(self, settings: config.Settings, *, freeze_heap: bool = False):
            assert freeze_heap
            self.exit_code = 1

        async def run(self) -> None:
            return None

    monkeypatch.setattr(app_module, "App", FailedApp)
    assert entry.main(["--log-level", "ERROR"]) == 1
