"""Floods beside a light client: what one client's flood costs another (``make stress``, and a
short version in ``make test``).

Each flood runs against a live server while a light client on its own connection sends one
request at a time; the light client's latency is compared with its latency on the idle server:

- gRPC: ``n`` calls sent at once over 16 connections, ``Classify`` (one text) or ``ClassifyBatch``
  (16 texts); every call must end OK or RESOURCE_EXHAUSTED with ``classifier-error: Overloaded``;
- HTTP: 16 keep-alive connections, each pipelining 16 requests at a time, for ``seconds``;
- gone clients: two clients that each send 256 texts and close (FIN) every 0.1 s, beside a live
  client; their work must not slow the live client down.

The light client's calls must all succeed. It runs in a process of its own, as another team's
client would: in the flood's own event loop its first calls waited seconds for the flood client's
own work, which says nothing of the server. The figures are returned, for ``run.py`` to print
against the targets of issue 20.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import orjson
import uvloop

from solution.proto.classifier.v1 import ERROR_METADATA_KEY
from solution.proto.classifier.v1 import classifier_pb2 as pb
from solution.standins.corpus import reference_texts
from tests.stress.refuser import Refuser

CLASSIFY = "/classifier.v1.Classifier/Classify"
CLASSIFY_BATCH = "/classifier.v1.Classifier/ClassifyBatch"
CONNECTIONS = 16  # the flood's connections (issue 20)
PIPELINED = 16  # requests each HTTP flood connection keeps in flight
BATCH_TEXTS = 16  # texts per ClassifyBatch call of the batch flood
GONE_TEXTS = 256  # texts each gone client sends before it closes
GONE_EVERY_S = 0.1
LIGHT_PAUSE_S = 0.05  # the light client's think time between its calls
DEADLINE_S = 120.0  # a bound for a stuck call, not a speed target


@dataclass
class Light:
    """The light client's record: statuses and latencies."""

    statuses: Counter[str] = field(default_factory=Counter)
    seconds: list[float] = field(default_factory=list)

    @property
    def all_ok(self) -> bool:
        return bool(self.seconds) and set(self.statuses) <= {"OK", "200"}

    def p99(self) -> float:
        return quantile(self.seconds, 0.99)

    def rate(self, wall_s: float) -> float:
        return len(self.seconds) / wall_s if wall_s else 0.0


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


Call = Callable[[], Awaitable[str]]  # one light-client request; returns its status


async def light_loop(call: Call, light: Light, until: asyncio.Event) -> None:
    """One call at a time, with a short pause, until ``until`` is set."""
    while not until.is_set():
        started = time.perf_counter()
        light.statuses[await call()] += 1
        light.seconds.append(time.perf_counter() - started)
        await asyncio.sleep(LIGHT_PAUSE_S)


class LightProcess:
    """The light client in a process of its own, one call at a time from ``start`` to ``stop``:
    ``kind`` "grpc" (``target`` host:port) or "http" (``target`` host:port)."""

    def __init__(self, kind: str, target: str):
        context = multiprocessing.get_context("spawn")
        self.ready, self.done = context.Event(), context.Event()
        self.results, child = context.Pipe(duplex=False)
        self.process = context.Process(
            target=_light_process, args=(kind, target, self.ready, self.done, child), daemon=True
        )

    def start(self) -> LightProcess:
        """Blocks until the client is connected (a second or so to import and connect)."""
        self.process.start()
        if not self.ready.wait(60):
            raise RuntimeError("the light client did not start")
        return self

    def stop(self) -> Light:
        self.done.set()
        if not self.results.poll(60):  # never hang a run on a client that died
            raise RuntimeError(f"the light client sent no results (exit {self.process.exitcode})")
        statuses, seconds = self.results.recv()
        self.process.join(30)
        return Light(Counter(statuses), seconds)


def _light_process(kind: str, target: str, ready: Any, done: Any, results: Any) -> None:
    async def main() -> Light:
        light = Light()
        host, port = target.rsplit(":", 1)
        until = asyncio.Event()

        async def watch() -> None:  # the parent's event, polled: it is not an asyncio one
            while not done.is_set():
                await asyncio.sleep(0.01)
            until.set()

        watcher = asyncio.ensure_future(watch())
        if kind == "grpc":
            async with own_channel(target) as channel:
                await channel.channel_ready()
                ready.set()
                await light_loop(grpc_light_call(channel), light, until)
        else:
            client = await HttpLight().open(host, int(port))
            ready.set()
            await light_loop(client, light, until)
            await client.close()
        await watcher
        return light

    light = uvloop.run(main())
    results.send((dict(light.statuses), light.seconds))


# ---- gRPC ------------------------------------------------------------------------------------


def own_channel(target: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])


async def grpc_code(call: Any, data: bytes) -> tuple[str, bool]:
    """(status name, marked Overloaded) of one raw call."""
    try:
        await call(data, timeout=DEADLINE_S)
        return "OK", False
    except grpc.aio.AioRpcError as exc:
        marked = (ERROR_METADATA_KEY, "Overloaded") in tuple(exc.trailing_metadata() or ())
        return exc.code().name, marked


def grpc_light_call(channel: grpc.aio.Channel) -> Callable[[], Awaitable[str]]:
    call = channel.unary_unary(CLASSIFY)
    data = pb.ClassifyRequest(text="a light client's call").SerializeToString()

    async def one() -> str:
        return (await grpc_code(call, data))[0]

    return one


async def grpc_idle_latency(target: str, calls: int = 20) -> Light:
    """The light client alone on the idle server."""
    light = Light()
    async with own_channel(target) as channel:
        one = grpc_light_call(channel)
        for _ in range(calls):
            started = time.perf_counter()
            light.statuses[await one()] += 1
            light.seconds.append(time.perf_counter() - started)
    return light


@dataclass
class GrpcFlood:
    statuses: Counter[str] = field(default_factory=Counter)  # "OK", "RESOURCE_EXHAUSTED", ...
    unmarked: int = 0  # RESOURCE_EXHAUSTED (or another error) without classifier-error metadata
    refused_seconds: list[float] = field(default_factory=list)
    ok_seconds: list[float] = field(default_factory=list)
    light: Light = field(default_factory=Light)
    wall_s: float = 0.0

    @property
    def clean(self) -> bool:
        """Every flood call OK or RESOURCE_EXHAUSTED marked Overloaded."""
        return not self.unmarked and set(self.statuses) <= {"OK", "RESOURCE_EXHAUSTED"}


async def grpc_flood(target: str, n: int, batch: bool = False, seed: int = 0) -> GrpcFlood:
    """``n`` calls at once over ``CONNECTIONS`` connections, beside the light client."""
    texts = reference_texts(max(n, BATCH_TEXTS), seed=seed)
    if batch:
        method = CLASSIFY_BATCH
        payloads = [
            pb.ClassifyBatchRequest(
                texts=[texts[(i + j) % len(texts)] for j in range(BATCH_TEXTS)]
            ).SerializeToString()
            for i in range(n)
        ]
    else:
        method = CLASSIFY
        payloads = [pb.ClassifyRequest(text=texts[i]).SerializeToString() for i in range(n)]
    result = GrpcFlood()
    channels = [own_channel(target) for _ in range(CONNECTIONS)]
    calls = [ch.unary_unary(method) for ch in channels]

    async def one(i: int, data: bytes) -> None:
        started = time.perf_counter()
        code, marked = await grpc_code(calls[i % CONNECTIONS], data)
        seconds = time.perf_counter() - started
        result.statuses[code] += 1
        if code == "OK":
            result.ok_seconds.append(seconds)
        else:
            result.refused_seconds.append(seconds)
            result.unmarked += not marked

    light = LightProcess("grpc", target).start()
    try:
        for ch in channels:  # connected: the server's stream limit is known before the burst
            await ch.channel_ready()
        started = time.perf_counter()
        await asyncio.gather(*(one(i, d) for i, d in enumerate(payloads)))
        result.wall_s = time.perf_counter() - started
    finally:
        result.light = light.stop()
        for ch in channels:
            await ch.close()
    return result


# ---- HTTP ------------------------------------------------------------------------------------


def http_post(body: bytes, host: str = "t") -> bytes:
    head = f"POST /process HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> int:
    """The status of the next response (its body read and dropped)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return status


class HttpLight:
    """The light client's keep-alive connection: one request at a time."""

    async def open(self, host: str, port: int) -> HttpLight:
        self.reader, self.writer = await asyncio.open_connection(host, port)
        return self

    async def __call__(self) -> str:
        self.writer.write(http_post(b'"a light client\'s request"'))
        return str(await read_response(self.reader))

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def http_idle_latency(host: str, port: int, calls: int = 20) -> Light:
    light = Light()
    one = await HttpLight().open(host, port)
    for _ in range(calls):
        started = time.perf_counter()
        light.statuses[await one()] += 1
        light.seconds.append(time.perf_counter() - started)
    await one.close()
    return light


@dataclass
class HttpFlood:
    statuses: Counter[int] = field(default_factory=Counter)
    light: Light = field(default_factory=Light)
    wall_s: float = 0.0


async def http_flood(host: str, port: int, seconds: float, seed: int = 0) -> HttpFlood:
    """``CONNECTIONS`` keep-alive connections, each with ``PIPELINED`` requests in flight (a new
    one written as each answer is read), for ``seconds``, beside the light client."""
    result = HttpFlood()
    texts = reference_texts(256, seed=seed)
    requests = [http_post(orjson.dumps(t)) for t in texts]
    done = asyncio.Event()

    async def connection(c: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        sent = 0
        try:
            writer.write(b"".join(requests[(c + i) % len(requests)] for i in range(PIPELINED)))
            sent = PIPELINED
            while True:
                result.statuses[await read_response(reader)] += 1
                sent -= 1
                if not done.is_set():
                    writer.write(requests[(c + sent) % len(requests)])
                    sent += 1
                elif sent == 0:
                    return
        finally:
            writer.close()

    light = LightProcess("http", f"{host}:{port}").start()
    started = time.perf_counter()
    flood = [asyncio.ensure_future(connection(c)) for c in range(CONNECTIONS)]
    await asyncio.sleep(seconds)
    done.set()
    result.light = light.stop()
    await asyncio.gather(*flood)
    result.wall_s = time.perf_counter() - started
    return result


async def gone_clients(host: str, port: int, seconds: float, clients: int = 2) -> Light:
    """``clients`` clients that each send ``GONE_TEXTS`` texts and close every ``GONE_EVERY_S``,
    beside a live HTTP client; returns the live client's record."""
    body = orjson.dumps(reference_texts(GONE_TEXTS, seed=3))
    request = http_post(body)
    done = asyncio.Event()

    async def gone() -> None:
        while not done.is_set():
            _, writer = await asyncio.open_connection(host, port)
            writer.write(request)
            await writer.drain()
            writer.close()  # a full close: FIN, then a RST once the server writes its answer
            await asyncio.sleep(GONE_EVERY_S)

    light = LightProcess("http", f"{host}:{port}").start()
    tasks = [asyncio.ensure_future(gone()) for _ in range(clients)]
    await asyncio.sleep(seconds)
    done.set()
    live = light.stop()
    await asyncio.gather(*tasks)
    return live


# ---- the targets of issue 20 ---------------------------------------------------------------


@dataclass
class Target:
    name: str
    figure: str
    met: bool
    correct: bool = True  # False: a correctness failure (a lost or unmarked call), not speed


def light_bound(idle: Light) -> float:
    """The light client's p99 bound beside a flood: 5x its idle p99 plus 0.2 s (issue 20)."""
    return 5 * idle.p99() + 0.2


async def fairness(
    host: str, http_port: int, grpc_target: str, grpc_calls: int, seconds: float
) -> list[Target]:
    """Every flood of issue 20 beside its light client, judged against the targets."""
    targets = []
    grpc_idle = await grpc_idle_latency(grpc_target)
    http_idle = await http_idle_latency(host, http_port)
    bound = light_bound(grpc_idle)
    with Refuser() as refuser:  # what grpc.aio alone allows on this machine
        floor = await grpc_flood(f"127.0.0.1:{refuser.port}", grpc_calls, batch=True)
    floor_p99 = quantile(floor.refused_seconds, 0.99)
    for batch in (False, True):
        flood = await grpc_flood(grpc_target, grpc_calls, batch=batch)
        kind = f"gRPC {'ClassifyBatch x16' if batch else 'Classify'} flood"
        refused_p99 = quantile(flood.refused_seconds, 0.99)
        targets.append(
            Target(
                f"{kind}: {grpc_calls} calls over {CONNECTIONS} connections",
                f"{dict(flood.statuses)}, unmarked {flood.unmarked}, refusals p50 / p99 "
                f"{quantile(flood.refused_seconds, 0.5):.2f} / {refused_p99:.2f} s "
                f"(target p99 < 1 s; a grpc.aio server that only refuses: {floor_p99:.2f} s), "
                f"OK p99 {quantile(flood.ok_seconds, 0.99):.2f} s, {flood.wall_s:.1f} s in all",
                flood.clean and not refused_p99 >= 1.0,  # nan (no refusal) passes
                flood.clean,
            )
        )
        floor_light = f"; beside the refuse-only server's flood: p99 {floor.light.p99():.2f} s"
        targets.append(_light(f"{kind}: light client", flood.light, grpc_idle, bound, floor_light))
    http = await http_flood(host, http_port, seconds)
    targets.append(
        _light(
            f"HTTP flood ({CONNECTIONS} connections x {PIPELINED} pipelined): light client",
            http.light,
            http_idle,
            light_bound(http_idle),
            f"; flood answered {dict(http.statuses)}",
        )
    )
    idle_rate = 1 / (quantile(http_idle.seconds, 0.5) + LIGHT_PAUSE_S)
    live = await gone_clients(host, http_port, seconds)
    rate, worst = live.rate(seconds), max(live.seconds, default=float("nan"))
    targets.append(
        Target(
            f"2 clients sending {GONE_TEXTS} texts and closing every {GONE_EVERY_S} s: live client",
            f"{dict(live.statuses)}, {rate:.1f}/s (idle {idle_rate:.1f}/s, target >= half), "
            f"worst {worst:.2f} s (target <= 1 s)",
            live.all_ok and rate >= idle_rate / 2 and worst <= 1.0,
            live.all_ok,
        )
    )
    return targets


def _light(name: str, light: Light, idle: Light, bound: float, extra: str = "") -> Target:
    return Target(
        name,
        f"{dict(light.statuses)}, p99 {light.p99():.2f} s (idle p99 {idle.p99():.3f} s, "
        f"target <= {bound:.2f} s){extra}",
        light.all_ok and light.p99() <= bound,
        light.all_ok,
    )
