"""HTTP/1.1 front-end: one asyncio Protocol per connection, around three I/O-free parts.

- ``reader.RequestReader``: bytes in, complete requests or one terminal error out;
- ``pipeline.ResponsePipeline``: answers in request order, at most ``max_pipelined`` at once;
- ``flow.FlowControl``: reading pauses while the pipeline is full or the client does not
  read its answers.

What remains here is the glue: the transport, the handler tasks, one timer per connection that
watches whichever deadline its state has (the request head: ``header_timeout_s``; the body's
progress: ``body_timeout_s``; idleness: ``keep_alive_timeout_s``; none while the server itself
is busy or has paused reading), and how a connection ends:

- an error (400, 408, 413, 431, 501, 505, 503 at the connection limit) is answered after every
  request received before it, with ``Connection: close``, then a lingering close;
- a half-close (EOF) after complete requests: they are answered, then the connection closes;
  a FIN may also be a client gone for good (unknown until an answer is written), so its waiting
  requests become the lowest class (``ServerState.client_closed``): served last, shed first;
  an answer written after it counts as 499 when the client's kernel resets the connection
  (``peer.py``);
- the client leaving (the connection lost) cancels its handlers (the engine drops their texts);
- drain (``ServerState.drain``): every request already received is answered, the last one
  with ``Connection: close``, and the connection closes between requests; one idle when the
  drain begins stays open ``DRAIN_IDLE_S`` for a request its client may already have sent.

Every request whose first byte arrived ends in exactly one ``on_response`` call: the status
written, or 499 when the client left before its answer.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import cast

from solution.server.http.clients import ConnectionClients
from solution.server.http.flow import PIPELINE, WRITE, FlowControl
from solution.server.http.messages import (
    CLIENT_GONE,
    CONTINUE,
    Request,
    RequestHead,
    Response,
    ResponseHook,
    encode_response,
    error_response,
)
from solution.server.http.peer import GONE_CHECK_S, peer_reset
from solution.server.http.pipeline import Exchange, ResponsePipeline
from solution.server.http.reader import Phase, RequestError, RequestReader
from solution.server.http.state import Handler, ServerState

__all__ = [
    "DRAIN_IDLE_S",
    "LINGER_S",
    "Handler",
    "HttpProtocol",
    "Request",
    "RequestHead",
    "Response",
    "ResponseHook",
    "ServerState",
    "error_response",
    "serve",
]

log = logging.getLogger(__name__)
access_log = logging.getLogger("solution.access")

# After the last answer, how long input is drained before the socket closes: enough for a
# client on a slow link to read a short error; short enough that a hostile one holds no slot.
LINGER_S = 2.0

# On drain, how long an idle connection stays open for a request its client may already have
# sent: a client sending back to back writes its next request the moment it reads an answer,
# and closing at that moment would lose it (EOF, no answer). Such a request is answered with
# Connection: close; a connection idle this long is closed.
DRAIN_IDLE_S = 1.0


class HttpProtocol(asyncio.Protocol):
    transport: asyncio.Transport  # set in connection_made, before any other callback
    flow: FlowControl

    def __init__(
        self,
        state: ServerState,
        loop: asyncio.AbstractEventLoop | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.state = state
        self.settings = state.settings
        self.loop = loop or asyncio.get_running_loop()
        self.clock = clock  # time.monotonic: the engine compares deadlines with it
        self.reader = RequestReader(state.settings)
        self.pipeline = ResponsePipeline(state.settings.max_pipelined)
        self.timer: asyncio.TimerHandle | None = None
        self.timer_due = math.inf  # when ``timer`` fires
        self.idle_since = 0.0
        self.draining = state.draining  # close between requests (after DRAIN_IDLE_S idle)
        self.drain_started = 0.0
        self.client_done = False  # the client half-closed: answer what came, then close
        self.clients = ConnectionClients()  # who its requests count for in fair share
        self.client = self.clients.own
        self.closing = False  # the last answer is written; input is only drained now
        # answers written after the client's FIN, reported once it is known whether the client
        # read them (peer.py): (request, received, status, written)
        self.unconfirmed: list[tuple[Request | RequestHead, float, int, float]] = []

    # ---- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.flow = FlowControl(self.transport)
        now = self.idle_since = self.clock()
        if len(self.state.connections) >= self.settings.max_connections:
            self.reader.stop()
            refusal = RequestError(
                503, "too many connections; retry later", RequestHead(None, None), now
            )
            refusal.headers.append((b"retry-after", b"1"))
            self._add_error(refusal)
            return
        self.state.connections.add(self)
        self._watch(now)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return  # lingering: read and dropped
        now = self.clock()
        for event in self.reader.feed(data, now):
            if isinstance(event, Request):
                self._add_request(event, now)
            elif isinstance(event, RequestError):
                self._add_error(event)
            elif not self.pipeline:  # 100 Continue; behind others it would take their slot
                self.transport.write(CONTINUE)
        if not self.pipeline or self.reader.phase is not Phase.IDLE:
            self._watch(now)  # (else: the handlers are working; nothing of the client's to time)

    def eof_received(self) -> bool:
        """The client closed its side. Complete requests are still answered (nc -N, HTTP/1.0
        scripts, health checks half-close after sending); one cut off half-way gets 400."""
        if self.closing:
            self.transport.close()  # a lingering close is over: the client read its answer
            return True
        self.client_done = True
        if self.pipeline and self.state.client_closed is not None:
            for client in self.clients:
                self.state.client_closed(client)
        for error in self.reader.eof():
            self._add_error(error)
        if not self.pipeline and not self.closing:
            self._close()
        return True  # closing is up to us: there may be answers still to write

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection is gone: its handlers are cancelled (the engine drops their texts
        before compute) and what was not answered is reported as 499."""
        self.state.forget(self)
        self.closing = True
        self._cancel_timer()
        self._confirm(gone=exc is not None)  # a write after the FIN failed: the client left
        gone = self.reader.abandon()
        self._abandon()
        if gone is not None:
            self._report(gone.head, gone.started, CLIENT_GONE)

    def pause_writing(self) -> None:
        self.flow.pause(WRITE)

    def resume_writing(self) -> None:
        if self.flow.resume(WRITE):
            self._resumed()

    # ---- requests in ------------------------------------------------------------------------

    def _add_request(self, request: Request, now: float) -> None:
        request.client = self.clients.of(request.headers)
        self.pipeline.add(Exchange(request, now, request.keep_alive))
        exchange = self.pipeline.next_to_start()  # only the new one can have become startable
        if exchange is not None:
            exchange.task = self.loop.create_task(self._run(exchange))
        if len(self.pipeline) >= self.settings.max_pipelined:
            self.flow.pause(PIPELINE)

    def _add_error(self, error: RequestError) -> None:
        self.pipeline.add(Exchange(error.head, error.started, False, error.response()))
        self._flush()

    def _start_ready(self) -> None:
        while (exchange := self.pipeline.next_to_start()) is not None:
            exchange.task = self.loop.create_task(self._run(exchange))

    async def _run(self, exchange: Exchange) -> None:
        request = cast(Request, exchange.info)  # only requests are started, never refusals
        try:
            response = await self.state.handler(request)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("handler failed", extra={"path": request.path})
            response = error_response(500, "internal error")
        exchange.response = response
        self._flush()

    # ---- answers out ------------------------------------------------------------------------

    def _flush(self) -> None:
        """Write finished answers in request order; stop at the first unfinished one."""
        pipeline = self.pipeline
        while not self.closing and (exchange := pipeline.pop_answered()) is not None:
            response = cast(Response, exchange.response)
            last = not pipeline and (
                self.client_done or (self.draining and self.reader.phase is Phase.IDLE)
            )
            keep_alive = exchange.keep_alive and not last
            self.transport.write(encode_response(response, keep_alive, exchange.head_only))
            if self.client_done:  # the client may have gone: reported in _confirm
                now = self.clock()
                self.unconfirmed.append((exchange.info, exchange.received, response.status, now))
            elif self.state.on_response is not None or self.settings.access_log:
                self._report(exchange.info, exchange.received, response.status)
            if not keep_alive:
                self._finish()
                return
        if len(pipeline) > pipeline.started:
            self._start_ready()
        if (
            self.flow.paused
            and len(pipeline) < self.settings.max_pipelined
            and self.flow.resume(PIPELINE)
        ):
            self._resumed()
        if not pipeline:
            self.idle_since = now = self.clock()
            # usually the timer is armed earlier already (it re-arms itself when it fires early)
            if self.draining or now + self.settings.keep_alive_timeout_s < self.timer_due:
                self._watch(now)

    def _report(
        self, info: Request | RequestHead, received: float, status: int, at: float | None = None
    ) -> None:
        observe = self.state.on_response
        if observe is None and not self.settings.access_log:
            return
        seconds = (self.clock() if at is None else at) - received
        if observe is not None:
            observe(info, status, seconds)
        if self.settings.access_log:
            access_log.info(
                "%s %s %d %.1fms", info.method or "-", info.path or "-", status, 1000 * seconds
            )

    def _abandon(self) -> None:
        for exchange in self.pipeline.abandon():
            if exchange.task is not None:
                exchange.task.cancel()
            self._report(exchange.info, exchange.received, CLIENT_GONE)

    # ---- endings ------------------------------------------------------------------------------

    def _finish(self) -> None:
        """The last answer is written. Lingering close: send EOF, keep reading (and dropping)
        for a moment, then close. An immediate close with unread input makes the kernel send
        RST, and a client still uploading a large body would lose the 413 it should read."""
        self.closing = True
        self._cancel_timer()
        self.reader.stop()
        self._abandon()  # nothing is left behind a final answer; if it were, it is reported
        if self.client_done:  # no reading after a FIN: wait only for a reset (peer.py)
            self.timer = self.loop.call_later(GONE_CHECK_S, self._confirm)
            return
        self.flow.release()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.timer = self.loop.call_later(LINGER_S, self.transport.close)

    def _confirm(self, gone: bool | None = None) -> None:
        """Report the answers written after the client's FIN: as written, or as 499 when the
        peer reset the connection (``gone``: already known from ``connection_lost``)."""
        if gone is None:
            gone = peer_reset(self.transport)
            self.transport.close()
        for info, received, status, written in self.unconfirmed:
            self._report(info, received, CLIENT_GONE if gone else status, written)
        self.unconfirmed.clear()

    def _close(self) -> None:
        """Close between requests (idle, draining, or the client half-closed while idle)."""
        self.closing = True
        self._cancel_timer()
        self.reader.stop()
        if not self.transport.is_closing():
            self.transport.close()

    def close_when_idle(self) -> None:
        """Drain: the last answer says Connection: close and the connection closes after it;
        one idle now closes after DRAIN_IDLE_S unless a request arrives first."""
        if self.draining or self.closing:
            return
        self.draining = True
        self.drain_started = now = self.clock()
        self._watch(now)

    def abort(self) -> None:
        """The grace period is over: drop the connection and whatever it still owes."""
        self.transport.abort()

    # ---- the one timer ----------------------------------------------------------------------

    def _deadline(self) -> float | None:
        """When the connection's state runs out of time; None while the wait is the server's
        (handlers running, reading paused by us) or nothing is left to wait for."""
        if self.closing:
            return None
        phase = self.reader.phase
        if phase is Phase.IDLE:
            if self.pipeline:
                return None
            # also while writing is paused: a client that neither reads nor sends is idle
            idle_until = self.idle_since + self.settings.keep_alive_timeout_s
            if self.draining:
                return min(idle_until, max(self.idle_since, self.drain_started) + DRAIN_IDLE_S)
            return idle_until
        if self.flow.paused:
            return None
        if phase is Phase.HEAD:
            return self.reader.started + self.settings.header_timeout_s
        if phase is Phase.BODY:
            return self.reader.progress + self.settings.body_timeout_s
        return None

    def _watch(self, now: float) -> None:
        """Arm the timer for the current deadline unless it already fires earlier (then it
        re-arms itself): under load a connection's timer rarely moves."""
        due = self._deadline()
        if due is not None and due < self.timer_due:
            if self.timer is not None:
                self.timer.cancel()
            self.timer = self.loop.call_later(due - now, self._on_timer)
            self.timer_due = due

    def _on_timer(self) -> None:
        self.timer, self.timer_due = None, math.inf
        due = self._deadline()
        if due is None:
            return
        now = self.clock()
        if now < due:
            self._watch(now)
        elif self.reader.phase is Phase.IDLE and self.flow.paused:
            self.transport.abort()  # its answers sit unread: a close would wait for them forever
        elif self.reader.phase is Phase.IDLE:
            self._close()
        elif (error := self.reader.expire()) is not None:
            self._add_error(error)

    def _resumed(self) -> None:
        """Reading resumed: a request held up by our pause gets its time afresh."""
        now = self.clock()
        self.reader.restart_clocks(now)
        self._watch(now)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer, self.timer_due = None, math.inf


async def serve(state: ServerState, host: str, port: int) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: HttpProtocol(state), host, port, backlog=4096, reuse_address=True
    )
