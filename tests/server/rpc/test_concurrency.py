"""gRPC under a burst of concurrent calls: every call reaches a handler and is answered.

grpc.aio takes one call at a time from grpc's core, between the event loop's other work; a burst
arrives faster, and the core parks the rest. With grpc's defaults it dropped parked calls beyond
1,000 at random (all beyond 3,000) as a bare CANCELLED that no handler saw. Here the server's loop
is held by hand while the burst arrives, so that every call of it is parked at once: a known
state, not a race (grpc's own channelz counters say when the core has them all). One connection
is held to its HTTP/2 stream limit, so that a busy client cannot park calls ahead of the others.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
import uvloop
from grpc._cython import cygrpc

from solution.proto.classifier.v1 import ERROR_METADATA_KEY
from solution.proto.classifier.v1 import classifier_pb2 as pb
from solution.proto.classifier.v1 import classifier_pb2_grpc as pb_grpc
from solution.server import config
from solution.server.compute.scoring import Prediction
from solution.server.errors import Overloaded
from solution.server.rpc.servicer import GrpcFrontend, calls_received
from tests.conftest import bound_service, until
from tests.live_server import free_port

BURST = 2000  # between grpc's soft (1,000) and hard (3,000) default limits


class InstantEngine:
    """Answers at once; refuses a text that says so, as a full queue does."""

    async def submit(
        self,
        texts: list[str],
        *,
        deadline: float | None = None,
        options: object = None,
        origin: str = "",
        client: object = None,
    ) -> list[dict[str, Prediction]]:
        if any(t.startswith("refuse") for t in texts):
            raise Overloaded("queue full; retry later")
        return [{"m": Prediction(1.0, t)} for t in texts]


class ServerThread:
    """A gRPC front-end in its own thread and event loop, whose loop a test can hold."""

    def __init__(self, settings: config.Settings):
        self.loop = uvloop.new_event_loop()
        # a port of its own, so that channelz can tell this server from the others in the process
        self.port = free_port()
        self.frontend = GrpcFrontend(
            bound_service(InstantEngine()), settings.replace(grpc_port=self.port)
        )
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.holding = threading.Event()
        self.released = threading.Event()

    def __enter__(self) -> ServerThread:
        self.thread.start()
        self.run(self.frontend.start())
        self.server_id = channelz_server_id(self.port)
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        self.run(self.frontend.stop(0))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def hold(self) -> None:
        """Block the server's loop (as a busy loop would) until ``release``."""

        def block() -> None:
            self.holding.set()
            self.released.wait(30)  # never hang a test run

        self.loop.call_soon_threadsafe(block)
        assert self.holding.wait(10)

    def release(self) -> None:
        self.released.set()

    def calls_started(self) -> int:
        """Calls grpc's core has received, taken by a handler or not (channelz)."""
        server = json.loads(cygrpc.channelz_get_server(self.server_id))["server"]
        return int(server["data"].get("callsStarted", 0))


def channelz_server_id(port: int) -> int:
    """The channelz id of the server listening on ``port`` (its listener is named for it)."""
    servers = json.loads(cygrpc.channelz_get_servers(0))["server"]
    (found,) = [
        int(s["ref"]["serverId"])
        for s in servers
        if any(ls["name"].endswith(f":{port}") for ls in s.get("listenSocket", []))
    ]
    return found


@pytest.fixture
def server(settings: config.Settings) -> Iterator[ServerThread]:
    with ServerThread(settings) as srv:
        yield srv


CONNECTIONS = 8  # the burst comes from several clients: one alone is held to its stream limit


@pytest.fixture
async def stubs(server: ServerThread) -> AsyncIterator[list[Any]]:
    """Stubs on their own connections (a light client's is the last)."""
    target = f"127.0.0.1:{server.port}"
    own = [("grpc.use_local_subchannel_pool", 1)]  # a TCP connection per channel
    channels = [grpc.aio.insecure_channel(target, options=own) for _ in range(CONNECTIONS + 1)]
    stubs = [pb_grpc.ClassifierStub(ch) for ch in channels]
    for stub in stubs:
        await stub.Classify(pb.ClassifyRequest(text="warm"), timeout=10)
    yield stubs
    for ch in channels:
        await ch.close()


async def outcome(call: Any) -> tuple[str, str | None]:
    """(status, classifier-error metadata) of one finished call."""
    try:
        await call
        return "OK", None
    except grpc.aio.AioRpcError as exc:
        return exc.code().name, dict(exc.trailing_metadata() or ()).get(ERROR_METADATA_KEY)


async def test_a_burst_parked_in_grpc_is_answered_call_by_call(server, stubs):
    *heavy, light = stubs
    before = server.calls_started()
    server.hold()
    texts = [f"refuse {i}" if i % 4 == 0 else f"text {i}" for i in range(BURST)]
    burst = [
        heavy[i % CONNECTIONS].Classify(pb.ClassifyRequest(text=t), timeout=60)
        for i, t in enumerate(texts)
    ]
    light_call = light.Classify(pb.ClassifyRequest(text="light"), timeout=60)
    await until(lambda: server.calls_started() >= before + BURST + 1, timeout_s=60)
    server.release()

    outcomes = Counter(await asyncio.gather(*(outcome(c) for c in burst)))
    assert outcomes == {
        ("OK", None): BURST * 3 // 4,
        ("RESOURCE_EXHAUSTED", "Overloaded"): BURST // 4,
    }
    assert await outcome(light_call) == ("OK", None)
    # what ``stop`` waits for: the handlers have taken every call the core received
    assert server.frontend.arrivals.count == calls_received(server.port)


async def test_one_connection_holds_at_most_its_stream_limit(server, stubs, settings):
    limit = settings.grpc_max_streams_per_connection
    heavy, light = stubs[0], stubs[-1]
    before = server.calls_started()
    server.hold()
    burst = [
        heavy.Classify(pb.ClassifyRequest(text=f"t {i}"), timeout=60) for i in range(2 * limit)
    ]
    await until(lambda: server.calls_started() >= before + limit, timeout_s=60)
    light_call = light.Classify(pb.ClassifyRequest(text="light"), timeout=60)
    await until(lambda: server.calls_started() > before + limit, timeout_s=60)
    # the light call arrived; of the heavy ones only `limit` did (the rest wait in the client,
    # and no stream frees while the server's loop is held)
    assert server.calls_started() == before + limit + 1
    server.release()

    assert Counter(await asyncio.gather(*(outcome(c) for c in burst))) == {("OK", None): 2 * limit}
    assert await outcome(light_call) == ("OK", None)


async def test_calls_parked_when_the_server_stops_are_answered_none_cancelled(server, stubs):
    """SIGTERM under gRPC load ended one call in ~97 CANCELLED: the stop's grace (1 s) ran out
    before the handlers had reached every call grpc's core held (a call no handler has taken is
    cancelled at once by ``server.stop``, whatever its grace: 1,999 of 2,000 here). ``stop`` now
    lets the handlers take them first, within the rest of the shutdown's grace."""
    *heavy, _ = stubs
    before = server.calls_started()
    server.hold()
    burst = [
        heavy[i % CONNECTIONS].Classify(pb.ClassifyRequest(text=f"t {i}"), timeout=60)
        for i in range(BURST)
    ]
    await until(lambda: server.calls_started() >= before + BURST, timeout_s=60)
    # the stop begins while the calls are parked, as when SIGTERM comes in the middle of a flood
    stopping = asyncio.run_coroutine_threadsafe(server.frontend.stop(settle_s=10.0), server.loop)
    server.release()
    outcomes = Counter([status for status, _ in await asyncio.gather(*map(outcome, burst))])
    stopping.result(30)
    assert outcomes == {"OK": BURST}
