"""The two load modes, over any protocol that offers connections (``Target``/``Exchange``).

- Closed loop: ``vus`` virtual users, each with its own connection, send the next request as
  soon as the previous one is answered, until the deadline; requests in flight then finish.
- Open loop: requests are due at given times (a fixed or ramping arrival rate, see
  ``scenarios``); each takes an idle virtual user, or starts a new one while fewer than
  ``max_vus`` exist. An arrival that finds none free is counted as unsent, never silently
  dropped or delayed (k6's ``dropped_iterations``): delaying it would hide the overload.

Latency is measured from the moment the request is written to the moment its answer is parsed.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from collections.abc import Iterable
from typing import Protocol

from .stats import Tally

Outcome = tuple[str, str] | None  # None: answered and checked; else (error kind, detail)


class Exchange(Protocol):
    """One virtual user's connection."""

    broken: bool  # set when the connection cannot be reused (closed, timed out)

    async def send(self, index: int) -> Outcome:
        """Send payload ``index``, wait for the answer, check it."""
        ...

    def close(self) -> None: ...


class Target(Protocol):
    name: str
    payloads: int  # how many distinct payloads; request i sends payload i % payloads

    async def connect(self) -> Exchange: ...

    async def aclose(self) -> None: ...


class _Run:
    """Shared state of one run: the clock, the tally, the payload sequence, progress output."""

    def __init__(self, target: Target, name: str, progress_s: float):
        self.target = target
        self.name = name
        self.tally = Tally()
        self.start = time.perf_counter()
        self.sequence = itertools.count()
        self.progress_s = progress_s

    def now(self) -> float:
        return time.perf_counter() - self.start

    async def one(self, exchange: Exchange | None) -> Exchange | None:
        """One request on ``exchange`` (connecting first when None); the exchange to reuse."""
        tally = self.tally
        tally.sent += 1
        tally.in_flight += 1
        tally.max_in_flight = max(tally.max_in_flight, tally.in_flight)
        try:
            if exchange is not None and exchange.broken:
                # the server closed it while idle (keep-alive timeout): a client reconnects
                exchange.close()
                exchange = None
            if exchange is None:
                try:
                    exchange = await self.target.connect()
                except OSError as exc:
                    tally.error("connect", str(exc))
                    await asyncio.sleep(0.05)  # do not spin on a refused port
                    return None
            index = next(self.sequence) % self.target.payloads
            sent_at = time.perf_counter()
            outcome = await exchange.send(index)
            if outcome is None:
                tally.ok(time.perf_counter() - sent_at, self.now())
            else:
                tally.error(*outcome)
            if exchange.broken:
                exchange.close()
                return None
            return exchange
        finally:
            tally.in_flight -= 1

    async def report_progress(self) -> None:
        last_ok = 0
        while True:
            await asyncio.sleep(self.progress_s)
            t = self.tally
            ok = len(t.latencies)
            print(
                f"  [{self.name}] {self.now():6.0f}s sent {t.sent} ok {ok} failed {t.failed} "
                f"unsent {t.unsent} in flight {t.in_flight} | last {self.progress_s:.0f}s: "
                f"{(ok - last_ok) / self.progress_s:.2f} ok/s",
                file=sys.stderr,
                flush=True,
            )
            last_ok = ok

    def progress(self) -> asyncio.Task[None] | None:
        if self.progress_s <= 0:
            return None
        return asyncio.ensure_future(self.report_progress())


async def closed_loop(
    target: Target,
    vus: int,
    duration_s: float,
    *,
    warmup_s: float = 0.0,
    name: str = "",
    progress_s: float = 0.0,
) -> Tally:
    """``vus`` users back to back for ``duration_s``; throughput counted after ``warmup_s``."""
    run = _Run(target, name or f"closed {vus}", progress_s)
    deadline = duration_s

    async def user() -> None:
        exchange: Exchange | None = None
        while run.now() < deadline:
            exchange = await run.one(exchange)
        if exchange is not None:
            exchange.close()

    reporter = run.progress()
    try:
        await asyncio.gather(*(user() for _ in range(vus)))
    finally:
        if reporter is not None:
            reporter.cancel()
    run.tally.duration_s = run.now()
    # Every request sent before the deadline is answered, so a saturated server was busy from the
    # first request to the last answer: answers / that time is its rate. A window ending at the
    # deadline would miss servers whose one round of batches outlasts it (base models on a CPU).
    run.tally.window = (min(warmup_s, duration_s / 2), run.tally.duration_s)
    return run.tally


async def open_loop(
    target: Target,
    arrivals: Iterable[float],
    max_vus: int,
    *,
    name: str = "",
    progress_s: float = 0.0,
) -> Tally:
    """One request per arrival time (seconds from the start, ascending) while a user is free."""
    run = _Run(target, name or "open", progress_s)
    idle: list[Exchange] = []
    users = 0  # virtual users that exist: idle ones plus busy ones
    tasks: set[asyncio.Task[None]] = set()
    last_arrival = 0.0

    async def iteration(exchange: Exchange | None) -> None:
        nonlocal users
        reusable = await run.one(exchange)
        if reusable is not None:
            idle.append(reusable)
        else:
            users -= 1  # its connection is gone; a later arrival may start a new user

    reporter = run.progress()
    try:
        for due in arrivals:
            last_arrival = due
            delay = due - run.now()
            if delay > 0:
                await asyncio.sleep(delay)
            if idle:
                exchange: Exchange | None = idle.pop()
            elif users < max_vus:
                users += 1
                exchange = None
            else:
                run.tally.unsent += 1
                continue
            task = asyncio.ensure_future(iteration(exchange))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
    finally:
        if reporter is not None:
            reporter.cancel()
        for exchange in idle:
            exchange.close()
    run.tally.duration_s = run.now()
    run.tally.window = (0.0, max(last_arrival, run.tally.duration_s))
    return run.tally
