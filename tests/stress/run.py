"""Send hostile HTTP cases at a live server and check every answer (``make stress``).

    python -m tests.stress.run [--cases 100000] [--grpc-cases 10000] [--concurrency 32]
                               [--target host:port --grpc-target host:port]

Without ``--target`` it starts ``python -m solution.server`` on the tiny stand-ins itself, so it
can also watch the process: that it never dies, and how its memory moves. Each case opens a
connection, sends its bytes (most followed by EOF, a half-close, which ends an incomplete
request and must not lose a complete one), and reads until the server closes. A case *violates*
when a valid request is not answered 200, a bad one gets a 5xx other than 501/505 or no answer
at all, anything gets a 500, or a case with known answers gets anything else on the wire
(HEAD answers read without a body, nothing may follow the last). A case *hangs* when nothing
comes back within the timeout.
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

import grpc
import uvloop

from tests.live_server import Server, request, rss_kib
from tests.stress.hostile import Case, cases
from tests.stress.hostile_grpc import GrpcCase, grpc_cases

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
        summary["seconds"] = round(time.perf_counter() - started, 1)
        if server:
            summary["server_alive"] = server.proc.poll() is None
            summary["rss_after_kib"] = rss_kib(server.proc.pid)
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
        ("seconds", summary.get("seconds")),
    ]
    width = max(len(name) for name, _ in rows)
    print("\n".join(f"{name:<{width}}  {value}" for name, value in rows))
    print("statuses:", dict(sorted(tally.statuses.items(), key=str)))
    for line in tally.examples:
        print("example:", line)
    return (
        not tally.violations
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
    )
    return 0 if report(tally, summary) else 1


if __name__ == "__main__":
    sys.exit(main())
