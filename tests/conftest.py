"""Shared fixtures: the tiny stand-ins (built once per session) and a started engine on them."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import uvloop

from solution.server import config
from solution.server.app import build_engine
from solution.server.engine import Engine
from tests.live_server import free_port


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict:
    return {"uvloop": uvloop.new_event_loop}  # the loop the service runs on


@pytest.fixture(scope="session")
def standins_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``make test`` passes the cached build in STANDINS_TINY; otherwise build one (~10 s)."""
    cached = os.environ.get("STANDINS_TINY")
    if cached and (Path(cached) / "cardiffnlp" / "config.json").is_file():
        return Path(cached)
    from solution.server.standins.build import build

    out = tmp_path_factory.mktemp("standins-tiny")
    build("tiny", out)
    return out


@pytest.fixture(scope="session")
def settings(standins_tiny: Path) -> config.Settings:
    return config.load(
        [],
        environ={
            "CLS_MODELS_DIR": str(standins_tiny),
            "CLS_HOST": "127.0.0.1",
            "CLS_HTTP_PORT": str(free_port()),
            "CLS_GRPC_PORT": str(free_port()),
            "CLS_DEVICE": "cpu",
        },
    )


@pytest.fixture(scope="session")
async def engine(settings: config.Settings) -> AsyncIterator[Engine]:
    """One warmed-up engine on the tiny stand-ins, shared by the engine and front-end tests."""
    eng = await asyncio.to_thread(build_engine, settings)
    eng.start()
    await eng.warm_up(["warm", ""])
    yield eng
    eng.stop()


async def until(condition: Callable[[], object], timeout_s: float = 10.0) -> None:
    """Wait for a state instead of sleeping a guessed time (tests run on a loaded 2-core CI)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(0.005)


class ComputeGate:
    """An engine observer that holds the compute thread after a batch until ``release()``, so a
    test can arrange the queue deterministically: one batch computing, one prepared ahead
    (``engine_prepared_ahead``), the rest queued."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.entered = threading.Event()
        self.gate = threading.Event()

    def __call__(self, report: object) -> None:
        self.entered.set()
        self.gate.wait(10)

    def __enter__(self) -> ComputeGate:
        self.engine.observers.insert(0, self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.gate.set()
        self.engine.observers.remove(self)

    def release(self) -> None:
        self.gate.set()


def engine_prepared_ahead(engine: Engine) -> bool:
    return engine._channel.full()


def engine_queue_length(engine: Engine) -> int:
    with engine._wakeup:
        return len(engine._queue)
