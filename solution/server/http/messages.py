"""What travels through the HTTP layer: requests as the handler sees them, responses, and their
encoding on the wire. No I/O here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus

import orjson

from solution.server.engine.service import Client


@dataclass(slots=True)
class Request:
    method: str
    path: str
    headers: list[tuple[bytes, bytes]]  # names lower-cased, in arrival order
    body: bytes
    keep_alive: bool  # what the client asked for; the server may still close after answering
    # time.monotonic() after which the answer is no longer wanted (Request-Timeout or the
    # server's request_timeout_s); the engine drops the texts unseen once it passes
    deadline: float | None = None
    client: Client | None = None  # who fair share counts it for (set by the connection)


@dataclass(slots=True, frozen=True)
class RequestHead:
    """What is known of a request that never became a ``Request``: refused by the reader, cut
    off by a timeout, or left by its client half-way. Either part may be unknown."""

    method: str | None
    path: str | None


# The HTTP layer's metrics hook (the app hands it on to ``Service.observe``): every request the
# layer receives ends in exactly one call, with the request (or what is known of it), the status
# sent (499: the client left first) and the seconds from the request's arrival to its answer.
ResponseHook = Callable[[Request | RequestHead, int, float], None]


@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    content_type: bytes = b"application/json"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


def error_response(
    status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None
) -> Response:
    return Response(status, orjson.dumps({"error": message}), headers=headers or [])


# Not an HTTP status: what nginx logs when the client closed before its answer was sent.
CLIENT_GONE = 499

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in HTTPStatus}

_HEADS: dict[tuple[int, bytes], bytes] = {}  # (status, content type) -> head up to the length


def encode_response(response: Response, keep_alive: bool, head_only: bool = False) -> bytes:
    """Status line and headers are built once per (status, content type) and reused: on the hot
    path only the length and the connection header change. ``head_only`` (a HEAD request)
    sends the Content-Length the body would have (RFC 9110 9.3.2) and no body."""
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
        b"" if head_only else response.body,
    )
