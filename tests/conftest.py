"""Shared fixtures: the tiny stand-ins (built once per session) and a started engine on them."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
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
