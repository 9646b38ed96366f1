"""Send hostile HTTP cases at a live server and check every answer (``make stress``).

    python -m tests.stress.run [--cases 100000] [--grpc-cases 10000] [--concurrency 32]
                               [--grpc-flood 10000] [--target host:port --grpc-target host:port]

Without ``--target`` it starts ``python -m solution.server`` on the tiny stand-ins itself, so it
can also watch the process: that it never dies, and how its memory moves. Each case opens a
connection, sends its bytes (most followed by EOF, a half-close, which ends an incomplete
request and must not lose a complete one), and reads until the server closes. A case *violates*
when a valid request is not answered 200, a bad one gets a 5xx other than 501/505 or no answer
at all, anything gets a 500, or a case with known answers gets anything else on the wire
(HEAD answers read without a body, nothing may follow the last). A case *hangs* when nothing
comes back within the timeout.

Then the gRPC cases (hostile bytes, ``--concurrency`` in flight), and two floods: ``--grpc-flood``
valid ``Classify`` calls sent at once through one connection, then spread over 16, while a light
client on its own connection sends one call at a time; every call must end OK or
RESOURCE_EXHAUSTED with ``classifier-error: Overloaded`` (a bare CANCELLED from grpc is a
violation).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import uvloop

from solution.proto.classifier.v1 import ERROR_METADATA_KEY
from tests.live_server import Server, request, rss_kib, wait_idle
from tests.stress.floods import LightProcess, Target, fairness
from tests.stress.hostile import Case, cases
from tests.stress.hostile_grpc import CLASSIFY, GrpcCase, flood_cases, grpc_cases

STATUS = re.compile(rb"HTTP/1\.[01] (\d{3}) ")
LENGTH = re.compile(rb"(?im)^content-length: *(\d+)\r?$")
REFUSED = {501, 505}  # the server's refusals of what it does not implement, not its failures


@dataclass
class Tally:
    sent: int = 0
    answered: int = 0
    refused: int = 0  # 503: overload protection, not a failure
    closed_silently: int = 0
    hung: int = 0
    violations: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int | str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def violate(self, case: Case | GrpcCase, why: str) -> None:
        self.violations[f"{case.kind}: {why}"] += 1
        if len(self.examples) < 5:
            self.examples.append(f"{case.kind}: {why}: {case.data[:120]!r}")


async def run_case(host: str, port: int, case: Case, tally: Tally, timeout_s: float) -> None:
    tally.sent += 1
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        tally.violate(case, f"connect failed: {exc}")
        return
    received = b""
    try:
        try:
            writer.write(case.data)
            if case.half_close:
                writer.write_eof()
            await writer.drain()
        except OSError:
            pass  # the server may refuse a large body early; its answer is still readable
        received = await asyncio.wait_for(reader.read(-1), timeout_s)
    except TimeoutError:
        tally.hung += 1
        tally.violate(case, "no answer and no close")
        return
    except OSError:
        pass  # reset after an error response: judged on what was received
    finally:
        writer.close()
    judge(case, received, tally)


def read_answers(data: bytes, methods: list[str]) -> tuple[list[int], bytes]:
    """The statuses of the responses in ``data``, framed as answers to ``methods`` (a HEAD
    answer has no body whatever its Content-Length says), and the bytes left after them."""
    statuses: list[int] = []
    i = 0
    for method in methods:
        end = data.find(b"\r\n\r\n", i)
        status = STATUS.match(data, i)
        if end < 0 or status is None:
            break
        length = LENGTH.search(data, i, end + 2)
        i = end + 4 + (0 if method == "HEAD" or length is None else int(length.group(1)))
        statuses.append(int(status.group(1)))
    return statuses, data[i:]


def judge(case: Case, received: bytes, tally: Tally) -> None:
    if case.answers:
        statuses, rest = read_answers(received, [method for _, method in case.answers])
    else:
        statuses, rest = [int(s) for s in STATUS.findall(received)], b""
    tally.statuses.update(statuses)
    if not statuses:
        tally.closed_silently += 1
        if case.expect != "any":
            tally.violate(case, "closed without an answer")
        return
    tally.answered += 1
    first = statuses[0]
    expected = [status for status, _ in case.answers]
    if 503 in statuses and statuses[: statuses.index(503)] == expected[: statuses.index(503)]:
        tally.refused += 1  # overload protection, answered in its slot
    elif 500 in statuses:
        tally.violate(case, "500 internal error")
    elif case.answers:
        if statuses != expected or rest:
            tally.violate(case, f"answered {statuses} + {len(rest)} bytes, expected {expected}")
    elif case.expect == "ok" and first != 200:
        tally.violate(case, f"valid request answered {first}")
    elif case.expect == "reject" and not (400 <= first < 500 or first in REFUSED):
        tally.violate(case, f"bad request answered {first}")


async def run_grpc(
    target: str, n: int, concurrency: int, seed: int, timeout_s: float, tally: Tally
) -> None:
    """The gRPC payloads, through one channel with ``concurrency`` calls in flight."""
    accepted = {
        "ok": {"OK", "RESOURCE_EXHAUSTED"},
        "reject": {"INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"},
        "any": {"OK", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"},
    }
    limit = asyncio.Semaphore(concurrency)
    async with grpc.aio.insecure_channel(target) as channel:

        async def one(case: GrpcCase) -> None:
            call = channel.unary_unary(case.method)  # no serializer: the raw bytes go out
            tally.sent += 1
            async with limit:
                try:
                    await call(case.data, timeout=timeout_s)
                    code = "OK"
                except grpc.aio.AioRpcError as exc:
                    code = exc.code().name
            if code == "DEADLINE_EXCEEDED":
                tally.hung += 1
            tally.answered += 1
            tally.statuses[f"grpc {code}"] += 1
            if code == "RESOURCE_EXHAUSTED" and case.expect == "ok":
                tally.refused += 1
            elif code not in accepted[case.expect]:
                tally.violate(case, f"answered {code}")

        await asyncio.gather(*(one(c) for c in grpc_cases(n, seed)))


# A flood call waits behind the whole burst (10,000 calls take ~20 s on 2 cores); past this it is
# counted as hung. A bound for a stuck call, not a speed target.
FLOOD_DEADLINE_S = 120.0
# One client alone is held to its stream limit (its calls wait in it); many fill the queue, and
# the service refuses.
FLOOD_CONNECTIONS = (1, 16)


async def run_grpc_flood(
    target: str, n: int, connections: int, seed: int, tally: Tally
) -> dict[str, object]:
    """``n`` concurrent ``Classify`` calls spread over ``connections`` channels, all sent at once,
    while a light client in a process of its own (``floods.LightProcess``: in this loop its
    calls would wait for the flood's own client work) sends one call at a time. Every call must
    end OK or RESOURCE_EXHAUSTED with ``classifier-error: Overloaded``. Returns the figures,
    named for the number of connections."""
    heavy_seconds: dict[str, list[float]] = {"OK": [], "RESOURCE_EXHAUSTED": []}
    own_connection = [("grpc.use_local_subchannel_pool", 1)]  # a TCP connection per channel
    channels = [
        grpc.aio.insecure_channel(target, options=own_connection) for _ in range(connections)
    ]
    heavy_calls = [ch.unary_unary(CLASSIFY) for ch in channels]

    async def one(i: int, case: GrpcCase) -> None:
        started = time.perf_counter()
        code = await grpc_outcome(heavy_calls[i % connections], case.data, tally, case)
        heavy_seconds.setdefault(code, []).append(time.perf_counter() - started)

    cases = flood_cases(n, seed)
    light_process = LightProcess("grpc", target).start()
    try:
        for ch in channels:  # connected: the server's stream limit is known before the burst
            await ch.channel_ready()
        started = time.perf_counter()
        await asyncio.gather(*(one(i, c) for i, c in enumerate(cases)))
        seconds = time.perf_counter() - started
    finally:
        light = light_process.stop()
        for ch in channels:
            await ch.close()
    for code, count in light.statuses.items():  # judged as the flood's calls are
        tally.sent += count
        tally.answered += count
        tally.statuses[f"grpc flood-light {code}"] += count
        if code == "RESOURCE_EXHAUSTED":
            tally.refused += count
        elif code != "OK":
            tally.violations[f"flood-light: answered {code}"] += count
    name = f"flood over {connections} connection{'s' if connections > 1 else ''}"
    ok, refused = heavy_seconds["OK"], heavy_seconds["RESOURCE_EXHAUSTED"]
    return {
        f"{name}: calls, seconds": f"{n}, {seconds:.1f}",
        f"{name}: OK, p50 / p99 s": f"{len(ok)}, {_quantiles(ok)}",
        f"{name}: refused, p50 / p99 s": f"{len(refused)}, {_quantiles(refused)}",
        f"{name}: light client": (
            f"{dict(light.statuses)}, p50 / max s {_quantiles(light.seconds, 0.5, 1)}"
        ),
    }


async def grpc_outcome(call: Any, data: bytes, tally: Tally, case: GrpcCase) -> str:
    """Send one flood call and judge it; returns its status name."""
    tally.sent += 1
    try:
        await call(data, timeout=FLOOD_DEADLINE_S)
        code, marked = "OK", True
    except grpc.aio.AioRpcError as exc:
        code = exc.code().name
        marked = (ERROR_METADATA_KEY, "Overloaded") in tuple(exc.trailing_metadata() or ())
    tally.answered += 1
    tally.statuses[f"grpc {case.kind} {code}"] += 1
    if code == "DEADLINE_EXCEEDED":
        tally.hung += 1
    if code == "RESOURCE_EXHAUSTED" and marked:
        tally.refused += 1
    elif code != "OK" or not marked:
        tally.violate(case, f"answered {code}" + ("" if marked else " without Overloaded"))
    return code


def _quantiles(values: list[float], *qs: float) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    picks = [ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in (qs or (0.5, 0.99))]
    return " / ".join(f"{v:.2f}" for v in picks)


async def run(
    host: str, port: int, n: int, concurrency: int, seed: int, timeout_s: float, tally: Tally
) -> None:
    queue: asyncio.Queue[Case | None] = asyncio.Queue(maxsize=concurrency * 2)
    started = time.perf_counter()

    async def worker() -> None:
        while (case := await queue.get()) is not None:
            await run_case(host, port, case, tally, timeout_s)

    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    for i, case in enumerate(cases(n, seed)):
        await queue.put(case)
        if i and i % 10_000 == 0:
            rate = i / (time.perf_counter() - started)
            print(f"  {i:>7} cases sent, {rate:,.0f}/s", file=sys.stderr, flush=True)
    for _ in workers:
        await queue.put(None)
    await asyncio.gather(*workers)


def stress(
    n: int,
    concurrency: int,
    seed: int,
    timeout_s: float,
    target: str | None,
    standins: Path | None,
    grpc_n: int = 0,
    grpc_target: str | None = None,
    grpc_flood: int = 0,
    fair_seconds: float = 0.0,
) -> tuple[Tally, dict[str, object]]:
    """Run the cases; returns the tally and a summary (server alive, RSS, follow-up request)."""
    tally = Tally()
    server = None
    if target:
        host, port = target.rsplit(":", 1)[0], int(target.rsplit(":", 1)[1])
    else:
        assert standins is not None, "--standins or --target is needed"
        log = Path(tempfile.mkdtemp()) / "server.log"
        server = Server(standins, log, CLS_HEADER_TIMEOUT_S="3")
        server.wait_ready()
        host, port = "127.0.0.1", server.port
        grpc_target = f"127.0.0.1:{server.grpc_port}"
    summary: dict[str, object] = {}
    try:
        if server:
            request(port, "POST", "/process", b'"warm"')
            summary["rss_before_kib"] = rss_kib(server.proc.pid)
        started = time.perf_counter()
        uvloop.run(run(host, port, n, concurrency, seed, timeout_s, tally))
        if grpc_n and grpc_target:
            uvloop.run(run_grpc(grpc_target, grpc_n, concurrency, seed, timeout_s, tally))
        if grpc_flood and grpc_target:
            for connections in FLOOD_CONNECTIONS:
                flood = run_grpc_flood(grpc_target, grpc_flood, connections, seed, tally)
                summary.update(uvloop.run(flood))
        if fair_seconds and grpc_target:
            if server:
                summary["rss_before_floods_kib"] = rss_kib(server.proc.pid)
            fair = fairness(host, port, grpc_target, grpc_flood or 1000, fair_seconds)
            summary["targets"] = uvloop.run(fair)
        summary["seconds"] = round(time.perf_counter() - started, 1)
        if server:
            summary["server_alive"] = server.proc.poll() is None
            time.sleep(1.0)  # the floods' last answers and closes
            summary["rss_after_kib"] = rss_kib(server.proc.pid)
            # "returns to its level": read again once the work the floods left is done
            summary["idle_after_s"] = wait_idle(port)
            summary["rss_idle_kib"] = rss_kib(server.proc.pid)
        status, _ = request(port, "POST", "/process", b'"a normal request afterwards"')
        summary["normal_request_after"] = status
    finally:
        if server:
            summary["exit_code"] = server.stop()
    return tally, summary


def report(tally: Tally, summary: dict[str, object]) -> bool:
    crashed = 0 if summary.get("server_alive", True) and summary.get("exit_code", 0) == 0 else 1
    rows = [
        ("cases sent", tally.sent),
        ("answered", tally.answered),
        ("refused (503)", tally.refused),
        ("closed without answer", tally.closed_silently),
        ("violations", sum(tally.violations.values())),
        ("hung", tally.hung),
        ("crashed", crashed),
        (
            "lost (valid, not answered 200)",
            sum(v for k, v in tally.violations.items() if k.startswith(("valid", "hostile-text"))),
        ),
        ("RSS before (MiB)", _mib(summary.get("rss_before_kib"))),
        ("RSS after (MiB)", _mib(summary.get("rss_after_kib"))),
        ("normal request afterwards", summary.get("normal_request_after")),
        *((f"gRPC {k}", v) for k, v in summary.items() if k.startswith("flood")),
        ("seconds", summary.get("seconds")),
    ]
    targets: list[Target] = summary.get("targets", [])  # type: ignore[assignment]
    before, idle = summary.get("rss_before_floods_kib"), summary.get("rss_idle_kib")
    if isinstance(before, int) and isinstance(idle, int):
        growth = idle / before - 1
        figure = (
            f"{before / 1024:.0f} -> {idle / 1024:.0f} MiB ({growth:+.1%}, target within 10%) "
            f"once idle again ({summary.get('idle_after_s')} s after the floods; 1 s after: "
            f"{_mib(summary.get('rss_after_kib'))} MiB)"
        )
        targets.append(Target("RSS after the floods", figure, abs(growth) <= 0.10))
    width = max(len(name) for name, _ in rows)
    print("\n".join(f"{name:<{width}}  {value}" for name, value in rows))
    for t in targets:
        print(f"{'met' if t.met else 'NOT MET':<7}  {t.name}: {t.figure}")
    print("statuses:", dict(sorted(tally.statuses.items(), key=str)))
    for line in tally.examples:
        print("example:", line)
    return (
        all(t.correct for t in targets)
        and not tally.violations
        and not tally.hung
        and not crashed
        and summary.get("normal_request_after") == 200
    )


def _mib(kib: object) -> str:
    return f"{kib / 1024:.0f}" if isinstance(kib, int) else "-"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds before 'hung'")
    parser.add_argument("--grpc-cases", type=int, default=10_000)
    parser.add_argument(
        "--grpc-flood", type=int, default=10_000, help="valid Classify calls sent all at once"
    )
    parser.add_argument(
        "--fair-seconds",
        type=float,
        default=10.0,
        help="length of the HTTP and gone-client floods beside a light client (0: none)",
    )
    parser.add_argument("--target", help="host:port of a running server (else one is started)")
    parser.add_argument("--grpc-target", help="host:port of its gRPC front-end")
    parser.add_argument("--standins", type=Path, default=Path(".cache/standins-tiny"))
    args = parser.parse_args()
    tally, summary = stress(
        args.cases,
        args.concurrency,
        args.seed,
        args.timeout,
        args.target,
        args.standins,
        args.grpc_cases,
        args.grpc_target,
        args.grpc_flood,
        args.fair_seconds,
    )
    return 0 if report(tally, summary) else 1


if __name__ == "__main__":
    sys.exit(main())
