"""The request reader: bytes in, complete requests or one terminal error out, like h11's
``next_event``. No I/O and no clock of its own: the caller passes the time with the bytes, and
asks ``expire``/``eof``/``abandon`` when a timer fires or the client goes.

It wraps httptools (llhttp), which already refuses the smuggling shapes (Content-Length with
Transfer-Encoding, two lengths, obs-fold, chunk-size overflow), and adds what llhttp leaves to
the server, each decided by RFC 9112:

- the limits: request line + headers (431, also for one header that never ends), body (413,
  before the body when Content-Length or a chunk-size line says so: llhttp takes any chunk size
  that fits 64 bits and would wait for its bytes);
- HTTP/1.0 and 1.1 only; 0.9 (no version) and 2.0 over this framing get 505 (RFC 9110 15.6.6);
- exactly one valid ``Host`` (a missing one on HTTP/1.1 too): 400 (3.2);
- ``Transfer-Encoding`` must end in ``chunked`` (400, 6.3); any other coding is not implemented
  (501, 6.1); on HTTP/1.0 its framing cannot be trusted (400, 6.1);
- no protocol upgrades (400); whitespace runs in the request line are accepted (3: llhttp
  yields the same method and target, so nothing is ambiguous);
- ``Request-Timeout: <seconds>`` becomes ``Request.deadline`` (400 when it is not a positive
  number); a request that asked to close ends the reading (9.6: later bytes are not processed).

Requests completed before an error are returned ahead of it, so they are still answered.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

import httptools

from solution.server.config import Settings
from solution.server.http.messages import (
    CLIENT_GONE,
    Request,
    RequestHead,
    Response,
    error_response,
)


class Phase(enum.Enum):
    IDLE = "idle"  # between requests
    HEAD = "head"  # request line and headers arriving (header_timeout_s)
    BODY = "body"  # headers complete, body arriving (body_timeout_s between parts)
    CLOSED = "closed"  # nothing more is read: after an error or a request that asked to close


@dataclass(slots=True)
class RequestError:
    """A request the reader refused, with the status it deserves; nothing is read after it."""

    status: int
    message: str
    head: RequestHead
    started: float  # when its first byte arrived (or when the error was found)
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    def response(self) -> Response:
        return error_response(self.status, self.message, self.headers)


class ExpectContinue:
    """The client waits for ``100 Continue`` before sending the body (RFC 9110 10.1.1)."""


EXPECT_CONTINUE = ExpectContinue()

Event = Request | RequestError | ExpectContinue


class _Refusal(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


_METHODS = {m.encode(): m for m in ("GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH")}
_VERSIONS = ("1.1", "1.0")
_WATCHED = frozenset(
    (b"host", b"transfer-encoding", b"content-length", b"expect", b"request-timeout")
)
# RFC 3986 host (reg-name or IP literal) and optional port; empty is allowed (RFC 9112 3.2).
_HOST = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?")
# Seconds as a plain decimal: no sign, exponent, nan or inf. Six digits is 11 days.
_HEX = re.compile(rb"[0-9A-Fa-f]+")
# The bytes last fed that are kept to read a chunk-size line (llhttp does not expose the size);
# a longer line is not checked (its bytes still count against the limit as they arrive).
_SIZE_LINE_BYTES = 64
_SECONDS = re.compile(rb"[0-9]{1,6}(?:\.[0-9]{1,9})?")


def _path_of(target: bytes) -> str:
    """The path of a request target. The usual origin form ("/process") is split here; other
    forms (absolute URLs) go through httptools' URL parser."""
    if target.startswith(b"/"):
        path = target.split(b"?", 1)[0].split(b"#", 1)[0]
    else:
        try:
            path = httptools.parse_url(target).path or b""
        except httptools.HttpParserInvalidURLError:
            raise _Refusal(400, "malformed request target") from None
    return path.decode("utf-8", "replace")


class RequestReader:
    def __init__(self, settings: Settings):
        self._settings = settings
        self._parser = httptools.HttpRequestParser(self)
        self.phase = Phase.IDLE
        self.started = 0.0  # first byte of the current request (the header deadline)
        self.progress = 0.0  # last body bytes of the current request (the body deadline)
        self._now = 0.0
        self._events: list[Event] = []
        self._begun = 0  # requests begun so far: whether one feed stayed inside one head
        self._head_fed = 0  # bytes of whole feeds that all went into the current head
        self._recent = b""  # the last bytes fed (``_SIZE_LINE_BYTES``), for chunk-size lines
        self._reset()

    def _reset(self) -> None:
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._body_bytes = 0
        self._method: str | None = None
        self._path: str | None = None
        self._timeout_s: float | None = None
        # where the last bytes fed end: in a chunk-size line ("open"), just after one ("ended")
        self._size_line: str | None = None

    # ---- what the connection calls ------------------------------------------------------------

    def feed(self, data: bytes, now: float) -> list[Event]:
        """The events these bytes complete, in order; a ``RequestError`` is always last."""
        if self.phase is Phase.CLOSED:
            return []
        self._now = now
        events: list[Event] = []
        self._events = events
        begun, in_head = self._begun, self.phase is Phase.HEAD
        self._recent = (self._recent + data[-_SIZE_LINE_BYTES:])[-_SIZE_LINE_BYTES:]
        try:
            self._parser.feed_data(data)
        except _Refusal as exc:
            self._refuse(exc)
        except httptools.HttpParserError as exc:
            cause = exc.__context__  # raised in a callback, re-raised by httptools
            if isinstance(cause, _Refusal):
                self._refuse(cause)
            elif self.phase is not Phase.CLOSED:  # else: bytes after "close" (RFC 9112 9.6)
                self._refuse(_Refusal(400, f"malformed HTTP request: {exc}"))
        else:
            if self.phase is Phase.BODY and self._size_line is not None:
                self._check_chunk_size(data)
            # llhttp reports a header only once it is complete: count whole feeds spent
            # inside one head, so a header that never ends is refused at the limit too
            if in_head and self.phase is Phase.HEAD and self._begun == begun:
                self._head_fed += len(data)
                if self._head_fed > self._settings.max_header_bytes:
                    self._refuse(self._too_large_head())
        # The parser and this reader hold each other, a cycle only the garbage collector frees
        # once the connection is gone: it must not keep the last requests and their bodies.
        self._events = []
        return events

    def eof(self) -> list[RequestError]:
        """The client closed its side: a request cut off half-way is a 400."""
        error = self._cut(400, "connection closed before the request was complete")
        return [error] if error is not None else []

    def expire(self) -> RequestError | None:
        """The current phase's timeout passed (the caller's timer decided it)."""
        if self.phase is Phase.HEAD:
            limit = self._settings.header_timeout_s
            return self._cut(408, f"request line and headers not received within {limit}s")
        limit = self._settings.body_timeout_s
        return self._cut(408, f"request body stalled: no data for {limit}s")

    def abandon(self) -> RequestError | None:
        """The client left: the request it had begun, if any, for the record (499)."""
        return self._cut(CLIENT_GONE, "client closed the connection")

    def restart_clocks(self, now: float) -> None:
        """The server paused reading: the time that cost is not the client's."""
        self.started = self.progress = now

    def stop(self) -> None:
        self.phase = Phase.CLOSED
        self._reset()  # a body half-read is not kept (see ``feed``)

    # ---- httptools callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._reset()
        self.phase = Phase.HEAD
        self.started = self._now
        self._begun += 1
        self._head_fed = 0

    def on_url(self, url: bytes) -> None:
        if self._method is None:  # the method is parsed before the target: known from here on,
            # so a HEAD refused while its headers arrive (431, 408) is answered without a body
            method = self._parser.get_method()
            self._method = _METHODS.get(method) or method.decode("ascii", "replace")
        self._url += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4  # ": " and CRLF
        if self._header_bytes > self._settings.max_header_bytes:
            raise self._too_large_head()
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        parser = self._parser
        method = parser.get_method()
        self._method = _METHODS.get(method) or method.decode("ascii", "replace")
        self._path = _path_of(self._url)
        version = parser.get_http_version()
        if version not in _VERSIONS:
            raise _Refusal(505, f"HTTP/{version} is not supported; use HTTP/1.1")
        if parser.should_upgrade():
            raise _Refusal(400, "protocol upgrades are not supported")
        if self._check_headers(version):
            self._events.append(EXPECT_CONTINUE)
        self.phase = Phase.BODY
        self.progress = self._now
        self._size_line = "open"  # a chunked body begins with one (else the body clears it)

    def on_chunk_header(self) -> None:
        self._size_line = "ended"

    def on_chunk_complete(self) -> None:
        self._size_line = "open"

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self._settings.max_body_bytes:
            raise _Refusal(413, f"body larger than {self._settings.max_body_bytes} bytes")
        self._body.append(body)
        self.progress = self._now
        self._size_line = None

    def on_message_complete(self) -> None:
        assert self._method is not None and self._path is not None
        keep_alive = self._parser.should_keep_alive()
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        deadline = None if self._timeout_s is None else self._now + self._timeout_s
        self._events.append(
            Request(self._method, self._path, self._headers, body, keep_alive, deadline)
        )
        self.phase = Phase.IDLE if keep_alive else Phase.CLOSED

    # ---- checks -------------------------------------------------------------------------------

    def _check_headers(self, version: str) -> bool:
        """RFC 9112's rules on the headers llhttp passes; True when a 100 Continue is due."""
        hosts: list[bytes] = []
        codings: list[bytes] = []
        length = 0
        expect = False
        timeouts: list[bytes] = []
        for name, value in self._headers:
            if name not in _WATCHED:
                continue
            if name == b"host":
                hosts.append(value)
            elif name == b"transfer-encoding":
                codings += (c.strip().lower() for c in value.split(b",") if c.strip())
            elif name == b"content-length":
                try:
                    length = int(value)
                except ValueError:  # llhttp refuses it too; this message is clearer
                    raise _Refusal(400, "invalid content-length") from None
            elif name == b"expect":
                expect = value.strip().lower() == b"100-continue"
            else:
                timeouts.append(value.strip())
        if len(hosts) > 1:
            raise _Refusal(400, "more than one Host header")
        if not hosts and version == "1.1":
            raise _Refusal(400, "HTTP/1.1 requests need a Host header")
        if hosts and not _HOST.fullmatch(hosts[0].strip()):
            raise _Refusal(400, "invalid Host header")
        if codings:
            self._check_codings(codings, version)
        if length > self._settings.max_body_bytes:
            raise _Refusal(413, f"body larger than {self._settings.max_body_bytes} bytes")
        self._timeout_s = (
            self._timeout_of(timeouts) if timeouts else self._settings.request_timeout_s or None
        )
        return expect and version == "1.1" and (length > 0 or bool(codings))

    def _check_codings(self, codings: list[bytes], version: str) -> None:
        if version == "1.0":
            raise _Refusal(400, "Transfer-Encoding cannot frame an HTTP/1.0 request")
        if codings[-1] != b"chunked":
            raise _Refusal(400, "Transfer-Encoding must end with chunked")
        other = next((c for c in codings if c != b"chunked"), None)
        if other is not None:
            coding = other.decode("ascii", "replace")
            raise _Refusal(501, f"transfer coding {coding!r} is not implemented; send chunked only")

    def _timeout_of(self, values: list[bytes]) -> float | None:
        """The request's time budget: Request-Timeout, capped by the server's default."""
        default = self._settings.request_timeout_s or None
        if len(values) > 1:
            raise _Refusal(400, "more than one Request-Timeout header")
        if not _SECONDS.fullmatch(values[0]) or float(values[0]) == 0:
            shown = values[0].decode("ascii", "replace")
            raise _Refusal(
                400,
                f"Request-Timeout must be a positive number of seconds (like 2.5), not {shown!r}",
            )
        asked = float(values[0])
        return asked if default is None else min(asked, default)

    def _check_chunk_size(self, data: bytes) -> None:
        """The feed ended in or just after a chunk-size line: 413 now if it declares more than the
        body limit leaves (an open line's digits so far can only grow)."""
        recent = self._recent
        if self._size_line == "ended":  # checked once: trailers may follow the last chunk's line
            recent = recent.removesuffix(b"\n").removesuffix(b"\r")
            self._size_line = None
        _, newline, line = recent.rpartition(b"\n")
        digits = _HEX.match(line)
        if not newline or digits is None:
            return  # the line began before the bytes kept, or holds no size yet
        limit = self._settings.max_body_bytes
        if self._body_bytes + int(digits.group(), 16) > limit:
            self._refuse(_Refusal(413, f"body larger than {limit} bytes (chunk size)"))

    def _count_head(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > self._settings.max_header_bytes:
            raise self._too_large_head()

    def _too_large_head(self) -> _Refusal:
        limit = self._settings.max_header_bytes
        return _Refusal(431, f"request line and headers exceed {limit} bytes")

    # ---- endings ------------------------------------------------------------------------------

    def _head(self) -> RequestHead:
        return RequestHead(self._method, self._path)

    def _refuse(self, exc: _Refusal) -> None:
        started = self.started if self.phase in (Phase.HEAD, Phase.BODY) else self._now
        self._events.append(RequestError(exc.status, str(exc), self._head(), started))
        self.phase = Phase.CLOSED

    def _cut(self, status: int, message: str) -> RequestError | None:
        """End reading; a request begun and not complete gets ``status``."""
        begun = self.phase in (Phase.HEAD, Phase.BODY)
        error = RequestError(status, message, self._head(), self.started) if begun else None
        self.stop()
        return error
