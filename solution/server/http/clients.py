"""Who an HTTP request counts for in fair share: its connection, or the client its ``Client-Id``
header names (``engine/shares.py``; README "Limits and failure behaviour")."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

from solution.server.engine.service import CLIENT_ID_KEY, Client, client_key

# Distinct client ids one connection may name (Client-Id); later ones count as the connection's.
MAX_CLIENT_IDS = 8
_CLIENT_ID_HEADER = CLIENT_ID_KEY.encode()
_connection_numbers = itertools.count(1)


class ConnectionClients:
    """One connection's clients: its own, and those its requests name by ``Client-Id``."""

    def __init__(self) -> None:
        self.own = Client(client_key(str(next(_connection_numbers)), None))
        self.named: dict[bytes, Client] = {}  # Client-Id value -> its client on this connection

    def of(self, headers: Sequence[tuple[bytes, bytes]]) -> Client:
        """The connection's client, or the one a ``Client-Id`` header names."""
        named = b""
        for key, value in headers:  # a plain loop: every request passes here
            if key == _CLIENT_ID_HEADER:
                named = value
                break
        if not named:
            return self.own
        client = self.named.get(named)
        if client is None:
            if len(self.named) >= MAX_CLIENT_IDS:
                return self.own
            client = self.named[named] = Client(client_key("", named), self.own.closed)
        return client

    def __iter__(self) -> Iterator[Client]:
        yield self.own
        yield from self.named.values()
