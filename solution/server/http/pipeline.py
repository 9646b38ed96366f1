"""The ordered response pipeline of one connection. No I/O.

HTTP/1.1 answers requests in the order they arrived (RFC 9112 9.3.2), however fast each is
handled. Exchanges queue in arrival order; the first ``limit`` of them may be started (handled
concurrently, so a pipelining client's texts can share a batch) and the rest wait their turn;
answers leave from the front, each as soon as every one before it has left.
"""

from __future__ import annotations

import asyncio
from collections import deque

from solution.server.http.messages import Request, RequestHead, Response


class Exchange:
    """One request and its answer. A refused request arrives with its answer already set."""

    __slots__ = ("head_only", "info", "keep_alive", "received", "response", "task")

    def __init__(
        self,
        info: Request | RequestHead,
        received: float,
        keep_alive: bool,
        response: Response | None = None,
    ):
        self.info = info
        self.received = received  # when the request arrived (the reported latency starts)
        self.keep_alive = keep_alive  # the client's wish; the connection decides when writing
        self.head_only = info.method == "HEAD"  # the answer goes without its body
        self.response = response
        self.task: asyncio.Task[None] | None = None


class ResponsePipeline:
    def __init__(self, limit: int):
        self.limit = limit
        self._queue: deque[Exchange] = deque()
        self.started = 0  # how many at the front have been started (or needed no start)

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, exchange: Exchange) -> None:
        self._queue.append(exchange)

    def next_to_start(self) -> Exchange | None:
        """The next exchange to hand to the handler, if the limit allows one."""
        queue = self._queue
        while self.started < len(queue) and self.started < self.limit:
            exchange = queue[self.started]
            self.started += 1
            if exchange.response is None:
                return exchange
        return None

    def pop_answered(self) -> Exchange | None:
        """The front exchange once its answer is ready (earlier ones have all left)."""
        queue = self._queue
        if not queue or queue[0].response is None:
            return None
        if self.started:
            self.started -= 1
        return queue.popleft()

    def abandon(self) -> list[Exchange]:
        """Everything not yet answered, in order; the pipeline is empty afterwards."""
        left = list(self._queue)
        self._queue.clear()
        self.started = 0
        return left
