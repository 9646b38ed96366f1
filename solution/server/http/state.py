"""What all connections of one HTTP server share: its settings, the handler, the hooks to the
service, and the set of open connections (for drain). ``protocol.HttpProtocol`` is one
connection; this is the server around them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from solution.server.config import Settings
from solution.server.engine.service import Client
from solution.server.http.messages import Request, Response, ResponseHook

if TYPE_CHECKING:
    from solution.server.http.protocol import HttpProtocol

Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class ServerState:
    """Shared by all connections of one server."""

    settings: Settings
    handler: Handler
    connections: set[HttpProtocol] = field(default_factory=set)
    on_response: ResponseHook | None = None  # the metrics hook (see ResponseHook)
    client_closed: Callable[[Client], None] | None = None  # a FIN with requests in flight
    draining: bool = False
    _all_closed: asyncio.Event | None = field(default=None, repr=False)

    def drain(self) -> None:
        """Stop keep-alive: connections close after their last answer (an idle one after
        DRAIN_IDLE_S). Close the listener first, so that no new connection arrives."""
        self.draining = True
        for conn in list(self.connections):
            conn.close_when_idle()

    async def wait_closed(self, timeout_s: float) -> bool:
        """Wait until every connection has closed; after ``timeout_s`` abort the rest (their
        unanswered requests are reported as 499). True when none had to be aborted."""
        if not self.connections:
            return True
        self._all_closed = asyncio.Event()
        try:
            async with asyncio.timeout(timeout_s):
                await self._all_closed.wait()
            return True
        except TimeoutError:
            for conn in list(self.connections):
                conn.abort()
            return False

    def forget(self, conn: HttpProtocol) -> None:
        self.connections.discard(conn)
        if not self.connections and self._all_closed is not None:
            self._all_closed.set()
