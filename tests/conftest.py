"""Shared fixtures: the tiny stand-ins (built once per session) and a started engine on them."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvloop

from solution.server import config
from solution.server.app import build_engine
from solution.server.engine.batches import BatchReport
from solution.server.engine.engine import Engine
from solution.server.engine.entries import State
from solution.server.engine.service import Observe, Service
from solution.server.errors import ServiceError
from solution.server.http import protocol as http
from solution.server.http.routes import Routes
from solution.server.rpc.servicer import GrpcFrontend
from tests.live_server import free_port


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict:
    return {"uvloop": uvloop.new_event_loop}  # the loop the service runs on


@pytest.fixture(scope="session")
def standins_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``make test`` passes the cached build in STANDINS_TINY; otherwise build one (~10 s)."""
    cached = os.environ.get("STANDINS_TINY")
    if cached and (Path(cached) / "cardiffnlp" / "config.json").is_file():
        return Path(cached)
    from solution.standins.build import build

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
    test can arrange the queue deterministically: one batch computing, the rest queued (no batch
    is cut while the compute thread is busy)."""

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

    async def fill_pipeline(self) -> tuple[asyncio.Future[Any], asyncio.Future[Any]]:
        """One batch computing (held here) and one text queued behind it. Returns the two
        requests' futures."""
        computing = asyncio.ensure_future(self.engine.submit(["computing"]))
        await until(self.entered.is_set)
        queued = asyncio.ensure_future(self.engine.submit(["queued first"]))
        await until(lambda: self.engine.waiting_texts == 1)
        return computing, queued


def entry_states(engine: Engine) -> list[State]:
    """The states of the engine's waiting entries, in arrival order."""
    with engine.lock:  # the documented way to read the engine's scheduler
        return engine.scheduler.states()


# ---- front-ends on the shared engine (gRPC and client tests) -----------------------------------


def bound_service(engine: Any, max_texts: int = 256, observe: Observe | None = None) -> Service:
    """The service both front-ends call, bound to ``engine`` (a real or a fake one)."""
    service = Service(max_texts, observe)
    service.bind(engine)
    return service


def service_errors() -> set[type[ServiceError]]:
    """Every ``ServiceError`` subclass, however deep: what each front-end's table must map."""
    found: set[type[ServiceError]] = set()
    todo: list[type[ServiceError]] = [ServiceError]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.add(sub)
            todo.append(sub)
    return found


@dataclass
class Frontends:
    http_target: str  # host:port
    grpc_target: str


@pytest.fixture(scope="session")
async def frontends(engine: Engine, settings: config.Settings) -> AsyncIterator[Frontends]:
    """HTTP and gRPC served from the shared engine in the test loop, as ``App.start`` wires them."""
    state = http.ServerState(
        settings, Routes(bound_service(engine, settings.max_texts_per_request))
    )
    server = await http.serve(state, settings.host, 0)
    grpc_frontend = GrpcFrontend(
        bound_service(engine, settings.max_texts_per_request), settings.replace(grpc_port=0)
    )
    await grpc_frontend.start()
    await grpc_frontend.set_serving()
    http_port = server.sockets[0].getsockname()[1]
    yield Frontends(f"{settings.host}:{http_port}", f"{settings.host}:{grpc_frontend.port}")
    await grpc_frontend.stop(0)
    server.close()
    await server.wait_closed()


class Gate:
    """Holds the engine's prepare thread inside the tokenization of one marker text, so that
    requests sent meanwhile queue up behind it: a slow batch without sleeps or timing luck."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.marker = f"gate marker {id(self)}"
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.held: asyncio.Future[Any] | None = None

    def encode_wrapper(self, encode: Callable[[Sequence[str]], Any]) -> Callable[..., Any]:
        def held_encode(texts: Sequence[str]) -> Any:
            if self.marker in texts:
                self.entered.set()
                self.opened.wait(30)  # never hang a test run
            return encode(texts)

        return held_encode

    async def close(self) -> None:
        """Submit the marker and return once the prepare thread is held by it."""
        await self.idle()  # nothing left over from an earlier test
        self.held = asyncio.ensure_future(self.engine.submit([self.marker], origin="gate"))
        assert await asyncio.to_thread(self.entered.wait, 10), "the engine never took the marker"

    async def queued(self, texts: int) -> None:
        """Wait until ``texts`` texts besides the marker wait in the engine's queue."""
        await until(lambda: self.engine.waiting_texts >= texts + 1)

    async def open(self) -> None:
        self.opened.set()
        if self.held is not None:
            async with asyncio.timeout(10):
                await self.held

    async def idle(self) -> None:
        """Wait until every text admitted so far has been answered."""
        await until(lambda: self.engine.idle)


@pytest.fixture
async def gate(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Gate]:
    g = Gate(engine)
    family = engine.families[0]
    monkeypatch.setattr(family, "encode", g.encode_wrapper(family.encode))
    yield g
    await g.open()
    await g.idle()


class Reports(list[BatchReport]):
    """The engine's batch reports, awaited by predicate: a test names the batch it needs instead
    of assuming which entry of the list it is."""

    async def wait_for(self, predicate: Callable[[BatchReport], bool]) -> BatchReport:
        await until(lambda: any(predicate(r) for r in list(self)))
        return next(r for r in list(self) if predicate(r))


@pytest.fixture
def reports(engine: Engine) -> Iterator[Reports]:
    collected = Reports()
    engine.observers.append(collected.append)
    yield collected
    engine.observers.remove(collected.append)
