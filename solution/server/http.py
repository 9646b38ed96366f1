"""HTTP/1.1 front-end: one asyncio Protocol per connection, parsed by httptools, no framework.

Per connection: the parser, a pipeline of requests answered strictly in arrival order (handled
concurrently, so a pipelining client's texts can share a batch), a keep-alive timer armed when
the connection goes idle, a read timer against slow clients, and flow control (reading pauses
while the pipeline is deep or the transport's write buffer is full).

Every protocol error is answered with a JSON ``{"error": ...}`` body and a status that says what
is wrong (400, 408, 413, 431, 503), then the connection closes; nothing reaches the wire as a
traceback. What a request means is decided in ``routes``; this module only moves bytes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import cast

import httptools
import orjson

from .config import Settings

log = logging.getLogger(__name__)
access_log = logging.getLogger("solution.access")


@dataclass(slots=True)
class Request:
    method: str
    path: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    keep_alive: bool


@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    content_type: bytes = b"application/json"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


Handler = Callable[[Request], Awaitable[Response]]


def error_response(
    status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None
) -> Response:
    return Response(status, orjson.dumps({"error": message}), headers=headers or [])


_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in HTTPStatus}


_HEADS: dict[tuple[int, bytes], bytes] = {}  # (status, content type) -> head up to the length


def encode_response(response: Response, keep_alive: bool) -> bytes:
    """Status line and headers are built once per (status, content type) and reused: on the hot
    path only the length and the connection header change."""
    key = (response.status, response.content_type)
    head = _HEADS.get(key)
    if head is None:
        status = _STATUS_LINES.get(response.status, f"HTTP/1.1 {response.status} \r\n".encode())
        head = _HEADS[key] = b"%scontent-type: %s\r\ncontent-length: " % (
            status,
            response.content_type,
        )
    extra = b"".join(b"%s: %s\r\n" % pair for pair in response.headers)
    connection = b"keep-alive" if keep_alive else b"close"
    return b"%s%d\r\n%sconnection: %s\r\n\r\n%s" % (
        head,
        len(response.body),
        extra,
        connection,
        response.body,
    )


# After an error response, how long input is drained before the socket closes: enough for a
# client on a slow link to read a short error; short enough that a hostile one holds no slot.
LINGER_S = 2.0


_METHODS = {m.encode(): m for m in ("GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH")}


def _path_of(target: bytes) -> str:
    """The path of a request target. The usual origin form ("/process") is split here; other
    forms (absolute URLs) go through httptools' URL parser."""
    if target.startswith(b"/"):
        path = target.split(b"?", 1)[0].split(b"#", 1)[0]
    else:
        try:
            path = httptools.parse_url(target).path or b""
        except httptools.HttpParserInvalidURLError:
            raise _ProtocolError(400, "malformed request target") from None
    return path.decode("utf-8", "replace")


class _ProtocolError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class ServerState:
    """Shared by all connections of one server."""

    settings: Settings
    handler: Handler
    connections: set[HttpProtocol] = field(default_factory=set)
    on_response: Callable[[Request, int, float], None] | None = None  # metrics hook
    draining: bool = False


class _Cycle:
    """One request/response exchange; ``response`` is set when the handler finishes."""

    __slots__ = ("keep_alive", "request", "response", "started", "task")

    def __init__(self, request: Request):
        self.request = request
        self.keep_alive = request.keep_alive
        self.response: Response | None = None  # encoded when written: keep-alive may change
        self.task: asyncio.Task[None] | None = None
        self.started = time.perf_counter()


class HttpProtocol(asyncio.Protocol):
    def __init__(self, state: ServerState):
        self.state = state
        self.settings = state.settings
        self.loop = asyncio.get_running_loop()
        # per connection
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.pipeline: deque[_Cycle] = deque()
        self.keep_alive_timer: asyncio.TimerHandle | None = None
        self.read_timer: asyncio.TimerHandle | None = None
        self.pause_reasons: set[str] = set()
        self.closing = False
        # the request being parsed
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0
        self.body: list[bytes] = []
        self.body_bytes = 0
        self.expect_continue = False

    # ---- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        if len(self.state.connections) >= self.settings.max_connections:
            self._fail(503, "too many connections; retry later", [(b"retry-after", b"1")])
            return
        self.state.connections.add(self)
        self._arm_keep_alive()

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.connections.discard(self)
        self.closing = True
        self._cancel_timers()
        self._abandon_pipeline()

    def _abandon_pipeline(self) -> None:
        """The client left: its requests need no compute (the engine drops cancelled texts)."""
        for cycle in self.pipeline:
            if cycle.task is not None:
                cycle.task.cancel()
        self.pipeline.clear()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        if self.keep_alive_timer is not None:
            self.keep_alive_timer.cancel()
            self.keep_alive_timer = None
        try:
            self.parser.feed_data(data)
        except _ProtocolError as exc:
            self._fail(exc.status, str(exc))
        except httptools.HttpParserUpgrade:
            self._fail(400, "protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, _ProtocolError):
                self._fail(cause.status, str(cause))
            else:
                self._fail(400, f"malformed HTTP request: {exc}")
            return
        if not self.pipeline and self.read_timer is None:
            self._arm_keep_alive()  # bytes that began no request must not keep it open forever

    def eof_received(self) -> bool:
        """The client closed its side. Like Go's net/http and nginx, read that as the client
        going away: requests in flight are cancelled, so an abandoned request (a load tester's
        timeout, a closed browser tab) costs no compute. A request cut off mid-way is answered
        400, for a client that only half-closed."""
        if not self.closing:
            if self.read_timer is not None:  # a request had begun and not completed
                self._fail(400, "connection closed before the request was complete")
            else:
                self._abandon_pipeline()
                self._close()
        return False  # let the transport close once its buffer is written

    def pause_writing(self) -> None:
        self._pause("write")

    def resume_writing(self) -> None:
        self._resume("write")

    # ---- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.header_bytes = 0
        self.body = []
        self.body_bytes = 0
        self.expect_continue = False
        if self.read_timer is None:
            self.read_timer = self.loop.call_later(
                self.settings.header_timeout_s, self._read_timeout
            )

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count_header_bytes(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value) + 4)
        name = name.lower()
        self.headers.append((name, value))
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_continue = True

    def on_headers_complete(self) -> None:
        length = self.parser_content_length()
        if length > self.settings.max_body_bytes:
            raise _ProtocolError(413, f"body larger than {self.settings.max_body_bytes} bytes")
        if self.expect_continue and not self.pipeline and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def parser_content_length(self) -> int:
        raw = next((v for n, v in self.headers if n == b"content-length"), b"0")
        try:
            return int(raw)
        except ValueError:  # llhttp rejects it too; answer the clearer message first
            raise _ProtocolError(400, "invalid content-length") from None

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self.body_bytes > self.settings.max_body_bytes:
            raise _ProtocolError(413, f"body larger than {self.settings.max_body_bytes} bytes")
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.read_timer is not None:
            self.read_timer.cancel()
            self.read_timer = None
        method = self.parser.get_method()
        request = Request(
            method=_METHODS.get(method) or method.decode("ascii", "replace"),
            path=_path_of(self.url),
            headers=self.headers,
            body=b"".join(self.body),
            keep_alive=self.parser.should_keep_alive() and not self.state.draining,
        )
        cycle = _Cycle(request)
        self.pipeline.append(cycle)
        cycle.task = self.loop.create_task(self._run(cycle))
        if len(self.pipeline) >= self.settings.max_pipelined:
            self._pause("pipeline")

    # ---- responses ---------------------------------------------------------------------------

    async def _run(self, cycle: _Cycle) -> None:
        try:
            response = await self.state.handler(cycle.request)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("handler failed", extra={"path": cycle.request.path})
            response = error_response(500, "internal error")
        cycle.response = response
        if self.state.on_response is not None:
            self.state.on_response(
                cycle.request, response.status, time.perf_counter() - cycle.started
            )
        if self.settings.access_log:
            access_log.info(
                "%s %s %d %.1fms",
                cycle.request.method,
                cycle.request.path,
                response.status,
                1000 * (time.perf_counter() - cycle.started),
            )
        self._flush()

    def _flush(self) -> None:
        """Write finished responses in request order; stop at the first unfinished one."""
        transport = self.transport
        while self.pipeline and self.pipeline[0].response is not None and transport is not None:
            cycle = self.pipeline.popleft()
            assert cycle.response is not None
            transport.write(encode_response(cycle.response, cycle.keep_alive))
            if not cycle.keep_alive:
                self._close()
                return
        if len(self.pipeline) < self.settings.max_pipelined:
            self._resume("pipeline")
        if not self.pipeline:
            self._arm_keep_alive()

    def _fail(
        self, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        """Answer a protocol-level error and close. Earlier pipelined requests are abandoned:
        after unparseable bytes the stream cannot be trusted."""
        self._abandon_pipeline()
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(encode_response(error_response(status, message, headers), False))
        # Lingering close: send EOF, keep reading (and discarding) for a moment, then close. An
        # immediate close with unread input makes the kernel send RST, and a client still
        # uploading a large body would lose the 413 it should read.
        self.closing = True
        self._cancel_timers()
        self.pause_reasons.clear()
        transport.resume_reading()
        if transport.can_write_eof():
            transport.write_eof()
        self.loop.call_later(LINGER_S, transport.close)

    def _close(self) -> None:
        self.closing = True
        self._cancel_timers()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    # ---- timers and flow control -------------------------------------------------------------

    def _count_header_bytes(self, n: int) -> None:
        self.header_bytes += n
        if self.header_bytes > self.settings.max_header_bytes:
            raise _ProtocolError(
                431, f"request line and headers exceed {self.settings.max_header_bytes} bytes"
            )

    def _read_timeout(self) -> None:
        self.read_timer = None
        self._fail(408, f"request not received within {self.settings.header_timeout_s}s")

    def _arm_keep_alive(self) -> None:
        if self.keep_alive_timer is None and not self.closing:
            self.keep_alive_timer = self.loop.call_later(
                self.settings.keep_alive_timeout_s, self._idle_timeout
            )

    def _idle_timeout(self) -> None:
        self.keep_alive_timer = None
        if not self.pipeline:
            self._close()

    def _cancel_timers(self) -> None:
        for timer in (self.keep_alive_timer, self.read_timer):
            if timer is not None:
                timer.cancel()
        self.keep_alive_timer = self.read_timer = None

    def _pause(self, reason: str) -> None:
        if not self.pause_reasons and self.transport is not None:
            self.transport.pause_reading()
        self.pause_reasons.add(reason)

    def _resume(self, reason: str) -> None:
        if reason in self.pause_reasons:
            self.pause_reasons.discard(reason)
            if not self.pause_reasons and self.transport is not None and not self.closing:
                self.transport.resume_reading()

    def close_when_idle(self) -> None:
        """Shutdown: close now if nothing is in flight, else after the last response."""
        if not self.pipeline:
            self._close()
        else:
            self.pipeline[-1].keep_alive = False


async def serve(state: ServerState, host: str, port: int) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: HttpProtocol(state), host, port, backlog=4096, reuse_address=True
    )
