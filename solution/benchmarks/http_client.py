"""HTTP/1.1 load client: one keep-alive connection per virtual user over raw asyncio sockets
(uvloop when the caller runs on it), responses parsed by httptools.

Every request is encoded once, before the run; the hot path writes bytes, feeds the parser and
resolves one future per answer, so one core drives well over ten thousand requests a second
(``make bench`` measures this ceiling against a trivial server).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import httptools
import orjson

from .load import Outcome

Checker = Callable[[int, bytes], Outcome]  # (status, body) -> None or (kind, detail)


def status_only(status: int, body: bytes) -> Outcome:
    """The cheapest check: any 200 passes (for the HTTP-layer runs against canned answers)."""
    return None if status == 200 else (f"http_{status}", body[:200].decode("utf-8", "replace"))


def encode_request(host: str, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


class HttpTarget:
    """``POST <path>`` of each text as a JSON string, to ``url`` (``http://host:port[/path]``)."""

    def __init__(
        self,
        url: str,
        texts: Sequence[str],
        check: Checker = status_only,
        timeout_s: float = 60.0,
        name: str = "http",
    ):
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"expected http://host:port[/path], got {url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        path = parts.path if parts.path not in ("", "/") else "/process"
        self.requests = [encode_request(parts.netloc, path, orjson.dumps(text)) for text in texts]
        self.payloads = len(self.requests)
        self.check = check
        self.timeout_s = timeout_s
        self.name = name

    async def connect(self) -> HttpConnection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(
            lambda: HttpConnection(self), self.host, self.port
        )
        return protocol

    async def aclose(self) -> None:
        return None


class HttpConnection(asyncio.Protocol):
    """One virtual user's connection: one request in flight at a time (no pipelining)."""

    def __init__(self, target: HttpTarget):
        self.target = target
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self.body: list[bytes] = []
        self.broken = False

    # ---- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.broken = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionResetError("connection closed by the server"))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.broken = True
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(ConnectionError(f"malformed response: {exc}"))

    # ---- httptools callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.body = []

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            status = self.parser.get_status_code()
            waiter.set_result((status, b"".join(self.body), self.parser.should_keep_alive()))

    # ---- the exchange -------------------------------------------------------------------------

    async def send(self, index: int) -> Outcome:
        if self.broken or self.transport is None:
            self.broken = True
            return "closed", "connection was closed before the request"
        waiter = self.waiter = self.loop.create_future()
        timer = self.loop.call_later(self.target.timeout_s, _expire, waiter)
        self.transport.write(self.target.requests[index])
        try:
            status, body, keep_alive = await waiter
        except TimeoutError:
            self.broken = True  # a late answer would be taken for the next request's
            return "timeout", f"no answer within {self.target.timeout_s}s"
        except ConnectionError as exc:
            self.broken = True
            return "closed", str(exc)
        finally:
            timer.cancel()
            self.waiter = None
        if not keep_alive:
            self.broken = True
        return self.target.check(status, body)

    def close(self) -> None:
        self.broken = True
        if self.transport is not None:
            self.transport.close()


def _expire(waiter: asyncio.Future[tuple[int, bytes, bool]]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())
