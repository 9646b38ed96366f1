"""Test doubles for driving ``http.HttpProtocol`` without sockets (uvicorn's protocol tests are
the model): a transport that records what is written, a loop whose timers fire only when the
test advances its clock, and a parser for the bytes the protocol wrote.

Handler tasks are real asyncio tasks on the running loop (so a handler can await a future the
test resolves); only time is fake, so nothing here sleeps or depends on the machine's speed.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any


class MockTimer:
    def __init__(self, loop: MockLoop, when: float, callback: Callable[..., object], args: tuple):
        self.loop = loop
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class MockLoop:
    """``call_later``/``call_at``/``time`` on a clock the test moves with ``advance``; tasks
    and ``call_soon`` go to the real running loop and are recorded so ``settle`` can wait."""

    def __init__(self, start: float = 1000.0):
        self.now = start
        self._timers: list[tuple[float, int, MockTimer]] = []
        self._order = itertools.count()
        self.tasks: list[asyncio.Task[Any]] = []

    # the clock
    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[..., object], *args: object) -> MockTimer:
        timer = MockTimer(self, when, callback, args)
        heapq.heappush(self._timers, (when, next(self._order), timer))
        return timer

    def call_later(self, delay: float, callback: Callable[..., object], *args: object) -> MockTimer:
        return self.call_at(self.now + delay, callback, *args)

    def advance(self, seconds: float) -> None:
        """Move the clock and fire, in time order, every timer that falls due."""
        target = self.now + seconds
        while self._timers and self._timers[0][0] <= target:
            when, _, timer = heapq.heappop(self._timers)
            self.now = max(self.now, when)
            if not timer.cancelled:
                timer.callback(*timer.args)
        self.now = target

    def pending_timers(self) -> list[float]:
        return sorted(t.when for _, _, t in self._timers if not t.cancelled)

    # tasks: real ones, recorded
    def create_task(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.append(task)
        return task

    def call_soon(self, callback: Callable[..., object], *args: object) -> asyncio.Handle:
        return asyncio.get_running_loop().call_soon(callback, *args)

    async def settle_until(self, condition: Callable[[], object]) -> None:
        """Let tasks run until ``condition`` holds (a state, never a guessed time)."""
        for _ in range(10_000):
            if condition():
                return
            await asyncio.sleep(0)
        raise AssertionError("condition never held")

    async def settle(self) -> None:
        """Run until every recorded task has finished and pending callbacks have run."""
        for _ in range(1000):
            await asyncio.sleep(0)  # a yield, not a timed wait: lets callbacks run
            pending = [t for t in self.tasks if not t.done()]
            if not pending:
                await asyncio.sleep(0)
                return
            await asyncio.wait(pending, timeout=10)
        raise AssertionError("tasks never settled")


class MockTransport:
    """Records writes, EOF, pause/resume and close; ``close`` reports ``connection_lost`` the
    way a real transport does (soon, not inside the call)."""

    def __init__(self) -> None:
        self.buffer = b""
        self.closed = False
        self.aborted = False
        self.eof_written = False
        self.read_paused = False
        self.protocol: Any = None
        self.tcp_state: int | None = None  # what the socket's TCP_INFO says (None: no socket)

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        assert not self.eof_written, "write after write_eof"
        self.buffer += data

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True

    def pause_reading(self) -> None:
        assert not self.read_paused, "paused twice"
        self.read_paused = True

    def resume_reading(self) -> None:
        self.read_paused = False

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def abort(self) -> None:
        self.aborted = True
        self.close()

    def get_extra_info(self, name: str, default: object = None) -> object:
        if name == "socket" and self.tcp_state is not None:
            return FakeSocket(self.tcp_state)
        return default

    def take(self) -> bytes:
        data, self.buffer = self.buffer, b""
        return data


@dataclass
class FakeSocket:
    """The one thing the protocol asks a socket: its TCP state (``http.peer``)."""

    state: int

    def getsockopt(self, level: int, option: int, size: int) -> bytes:
        return bytes([self.state]) + bytes(size - 1)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    raw_head: bytes = b""


@dataclass
class Wire:
    """Responses parsed from the bytes a protocol wrote; ``heads`` marks which requests were
    HEAD (their responses carry no body whatever Content-Length says)."""

    data: bytes
    answers: list[Answer] = field(default_factory=list)
    rest: bytes = b""


def parse_responses(data: bytes, heads: tuple[bool, ...] = ()) -> Wire:
    wire = Wire(data)
    i = 0
    while True:
        end = data.find(b"\r\n\r\n", i)
        if end < 0:
            break
        head = data[i:end]
        assert head.startswith(b"HTTP/1.1 "), f"not a status line at byte {i}: {head[:60]!r}"
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, value = line.split(": ", 1)
            assert name.lower() not in headers, f"duplicate header {name}"
            headers[name.lower()] = value
        i = end + 4
        if status == 100:
            wire.answers.append(Answer(status, headers, b"", head))
            continue
        n = len(wire.answers) - sum(a.status == 100 for a in wire.answers)
        is_head = n < len(heads) and heads[n]
        length = 0 if is_head else int(headers.get("content-length", "0"))
        wire.answers.append(Answer(status, headers, data[i : i + length], head))
        i += length
    wire.rest = data[i:]
    return wire
