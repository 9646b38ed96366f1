"""``HttpProtocol`` driven with bytes: a mock transport records what it writes, a mock loop fires
timers only when the test moves its clock, and a handler holds requests until the test releases
them. No sockets, no sleeps: pipelining depth, write-side pauses, half-close, drain, timeouts and
the metrics hook are all arranged by hand. (A few real-socket tests: test_http_sockets.py.)"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import orjson
import pytest

from solution.server.config import Settings
from solution.server.engine.service import Service
from solution.server.http import protocol as http
from solution.server.http.peer import GONE_CHECK_S
from solution.server.http.protocol import Request, Response
from solution.server.http.routes import Routes
from tests.server.http.doubles import MockLoop, MockTransport, parse_responses

# linux/tcp_states.h: where a reset leaves a socket, and where a half-close leaves it
TCP_CLOSE, TCP_CLOSE_WAIT = 7, 8

SETTINGS = dict(
    max_body_bytes=1000,
    max_header_bytes=2000,
    keep_alive_timeout_s=5.0,
    header_timeout_s=2.0,
    body_timeout_s=1.0,
    max_pipelined=4,
    max_connections=3,
)


def settings(**changes: Any) -> Settings:
    return Settings(**{**SETTINGS, **changes})


class Handler:
    """Echoes what it received. Paths under ``/hold`` wait until the test releases them."""

    def __init__(self) -> None:
        self.seen: list[Request] = []
        self.held: dict[str, asyncio.Future[None]] = {}
        self.running = 0
        self.most_running = 0

    async def __call__(self, request: Request) -> Response:
        self.seen.append(request)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            if request.path.startswith("/hold"):
                future = asyncio.get_running_loop().create_future()
                self.held[request.path] = future
                await future
        finally:
            self.running -= 1
        if request.path == "/boom":
            raise RuntimeError("handler bug")
        return Response(
            200,
            orjson.dumps(
                {
                    "path": request.path,
                    "method": request.method,
                    "body": request.body.decode("utf-8", "replace"),
                }
            ),
        )

    def release(self, path: str) -> None:
        self.held.pop(path).set_result(None)


@dataclasses.dataclass
class Seen:
    method: str | None
    path: str | None
    status: int
    seconds: float


class Rig:
    """One server state, a mock loop, and connections made on demand."""

    def __init__(self, handler: Any = None, **changes: Any):
        self.loop = MockLoop()
        self.handler = handler or Handler()
        self.reports: list[Seen] = []
        self.state = http.ServerState(settings(**changes), self.handler, on_response=self.report)

    def report(self, info: Any, status: int, seconds: float) -> None:
        self.reports.append(Seen(info.method, info.path, status, seconds))

    def connect(self) -> tuple[http.HttpProtocol, MockTransport]:
        protocol = http.HttpProtocol(self.state, loop=self.loop, clock=self.loop.time)
        transport = MockTransport()
        transport.protocol = protocol
        protocol.connection_made(transport)  # type: ignore[arg-type]
        return protocol, transport

    def statuses(self) -> list[int]:
        return [r.status for r in self.reports]


def get(path: str, extra: str = "", method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n".encode()


def post(path: str, body: bytes, extra: str = "") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


def bodies(data: bytes) -> list[str]:
    return [orjson.loads(a.body)["body"] for a in parse_responses(data).answers]


@pytest.fixture
def rig() -> Rig:
    return Rig()


# ---- keep-alive, pipelining, flow control -------------------------------------------------------


async def test_keep_alive_serves_requests_one_after_another(rig):
    protocol, transport = rig.connect()
    for i in range(3):
        protocol.data_received(post("/a", f"{i}".encode()))
        await rig.loop.settle()
        (answer,) = parse_responses(transport.take()).answers
        assert answer.status == 200 and answer.headers["connection"] == "keep-alive"
        assert orjson.loads(answer.body)["body"] == str(i)
    assert not transport.closed


async def test_pipelined_requests_are_answered_in_request_order(rig):
    protocol, transport = rig.connect()
    protocol.data_received(post("/hold/1", b"1") + post("/fast", b"2") + post("/fast", b"3"))
    await rig.loop.settle_until(lambda: "/hold/1" in rig.handler.held)
    assert transport.buffer == b""  # the fast ones are done but wait for the first
    rig.handler.release("/hold/1")
    await rig.loop.settle()
    assert bodies(transport.take()) == ["1", "2", "3"]


async def test_deep_pipelining_runs_at_most_max_pipelined_handlers_and_pauses_reading(rig):
    protocol, transport = rig.connect()
    protocol.data_received(b"".join(get(f"/hold/{i}") for i in range(40)))
    await rig.loop.settle_until(lambda: len(rig.handler.held) == 4)
    assert rig.handler.running == 4 and transport.read_paused
    for i in range(40):
        await rig.loop.settle_until(lambda i=i: f"/hold/{i}" in rig.handler.held)
        rig.handler.release(f"/hold/{i}")
    await rig.loop.settle()
    answers = parse_responses(transport.take()).answers
    assert [orjson.loads(a.body)["path"] for a in answers] == [f"/hold/{i}" for i in range(40)]
    assert rig.handler.most_running == 4
    assert not transport.read_paused  # the pipeline emptied


async def test_write_side_pause_stops_reading_until_both_reasons_clear(rig):
    protocol, transport = rig.connect()
    protocol.pause_writing()  # the client does not read its responses
    assert transport.read_paused
    protocol.data_received(b"".join(get(f"/hold/{i}") for i in range(4)))
    await rig.loop.settle_until(lambda: len(rig.handler.held) == 4)
    protocol.resume_writing()
    assert transport.read_paused  # still paused: the pipeline is full
    rig.handler.release("/hold/0")
    await rig.loop.settle_until(lambda: not transport.read_paused)
    protocol.pause_writing()
    protocol.pause_writing()  # idempotent, as the transport may repeat itself
    protocol.resume_writing()
    assert not transport.read_paused


async def test_timers_do_not_run_while_the_server_itself_paused_reading(rig):
    protocol, transport = rig.connect()
    protocol.data_received(b"".join(get(f"/hold/{i}") for i in range(4)) + b"GET /x HTT")
    await rig.loop.settle_until(lambda: len(rig.handler.held) == 4)
    rig.loop.advance(10)  # the fifth request's head waits on us, not on the client
    assert not transport.closed and transport.buffer == b""
    for i in range(4):
        rig.handler.release(f"/hold/{i}")
    await rig.loop.settle()
    protocol.data_received(b"P/1.1\r\nHost: t\r\n\r\n")
    await rig.loop.settle()
    assert [a.status for a in parse_responses(transport.take()).answers] == [200] * 5


async def test_chunked_body_is_reassembled(rig):
    protocol, transport = rig.connect()
    protocol.data_received(
        b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    await rig.loop.settle()
    assert bodies(transport.take()) == ["hello world"]


async def test_expect_100_continue_is_answered_only_when_nothing_is_ahead(rig):
    protocol, transport = rig.connect()
    protocol.data_received(post("/e", b"", "Expect: 100-continue\r\n").replace(b": 0", b": 4"))
    assert transport.take() == b"HTTP/1.1 100 Continue\r\n\r\n"
    protocol.data_received(b"body")
    await rig.loop.settle()
    assert bodies(transport.take()) == ["body"]
    # behind a request in flight, an interim answer would land in the wrong slot
    protocol.data_received(
        get("/hold/a") + b"POST /e HTTP/1.1\r\nHost: t\r\n"
        b"Content-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    )
    await rig.loop.settle_until(lambda: "/hold/a" in rig.handler.held)
    assert transport.buffer == b""
    protocol.data_received(b"late")
    rig.handler.release("/hold/a")
    await rig.loop.settle()
    assert [a.status for a in parse_responses(transport.take()).answers] == [200, 200]


async def test_http_1_0_closes_after_the_response_unless_it_asks_for_keep_alive(rig):
    protocol, transport = rig.connect()
    protocol.data_received(
        b"POST /x HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi"
    )
    await rig.loop.settle()
    assert parse_responses(transport.take()).answers[0].headers["connection"] == "keep-alive"
    protocol.data_received(b"POST /x HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi")
    await rig.loop.settle()
    (answer,) = parse_responses(transport.take()).answers
    assert answer.status == 200 and answer.headers["connection"] == "close"
    assert transport.eof_written


async def test_requests_after_connection_close_are_not_processed(rig):
    """RFC 9112 9.6: a server MUST NOT process requests after one that carried "close"."""
    protocol, transport = rig.connect()
    protocol.data_received(get("/a", "Connection: close\r\n") + get("/b"))
    await rig.loop.settle()
    wire = parse_responses(transport.take())
    assert [orjson.loads(a.body)["path"] for a in wire.answers] == ["/a"]
    assert [r.path for r in rig.handler.seen] == ["/a"]
    assert rig.statuses() == [200]


async def test_a_handler_that_raises_is_answered_500_and_the_connection_lives(rig):
    protocol, transport = rig.connect()
    protocol.data_received(get("/boom") + get("/after"))
    await rig.loop.settle()
    assert [a.status for a in parse_responses(transport.take()).answers] == [500, 200]


@pytest.mark.parametrize(
    "target, path",
    [(b"/a?x=1", "/a"), (b"/a#frag", "/a"), (b"http://host:8000/b?q", "/b"), (b"/", "/")],
)
async def test_request_target_forms_resolve_to_the_path(rig, target, path):
    protocol, transport = rig.connect()
    protocol.data_received(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % target)
    await rig.loop.settle()
    assert orjson.loads(parse_responses(transport.take()).answers[0].body)["path"] == path


# ---- malformed requests and strict parsing -------------------------------------------------------


@pytest.mark.parametrize(
    "raw, status",
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: -5\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n", 413),
        (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"GET /" + b"a" * 3000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"b" * 3000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: t\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n", 400),
        # strict parsing (RFC 9112): each of these used to be answered 200
        (b"GET /health\r\n\r\n", 505),  # HTTP/0.9
        (b"GET /health HTTP/2.0\r\nHost: t\r\n\r\n", 505),
        (b"GET /health HTTP/1.1\r\n\r\n", 400),  # no Host (3.2)
        (b"GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),  # two Hosts (3.2)
        (b"GET /health HTTP/1.1\r\nHost: a b\r\n\r\n", 400),  # an invalid Host (3.2)
        (b"GET /health HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
        (
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            501,
        ),
        (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 400),  # not last (6.3)
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),  # 1.0 (6.1)
        (b"GET / HTTP/1.1\r\nHost: t\r\nRequest-Timeout: soon\r\n\r\n", 400),
    ],
)
async def test_malformed_requests_get_a_json_error_and_a_lingering_close(rig, raw, status):
    protocol, transport = rig.connect()
    protocol.data_received(raw)
    await rig.loop.settle()
    (answer,) = parse_responses(transport.take()).answers
    assert answer.status == status and answer.headers["connection"] == "close"
    assert orjson.loads(answer.body)["error"]
    assert transport.eof_written and not transport.closed  # lingering: input is still drained
    protocol.data_received(b"more bytes the client sent meanwhile")
    assert transport.buffer == b""
    rig.loop.advance(http.LINGER_S)
    assert transport.closed
    assert rig.statuses() == [status]


async def test_double_spaces_in_the_request_line_are_accepted(rig):
    """RFC 9112 3 lets a server split the request line on whitespace; llhttp yields the same
    method and target either way, so there is nothing ambiguous to refuse."""
    protocol, transport = rig.connect()
    protocol.data_received(b"GET  /a  HTTP/1.1\r\nHost: t\r\n\r\n")
    await rig.loop.settle()
    assert orjson.loads(parse_responses(transport.take()).answers[0].body)["path"] == "/a"


async def test_a_header_that_never_ends_is_cut_off_at_the_limit(rig):
    protocol, transport = rig.connect()
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: t\r\nX-Endless: ")
    for _ in range(3):
        protocol.data_received(b"x" * 1000)
    assert parse_responses(transport.take()).answers[0].status == 431


async def test_chunked_body_over_the_limit_is_413(rig):
    protocol, transport = rig.connect()
    chunk = b"3e8\r\n" + b"a" * 1000 + b"\r\n"
    protocol.data_received(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
    protocol.data_received(chunk * 2)
    assert parse_responses(transport.take()).answers[0].status == 413


# ---- HEAD (defect 1) -----------------------------------------------------------------------------


@pytest.mark.parametrize("path, status", [("/health", 200), ("/nope", 404), ("/process", 405)])
async def test_head_is_answered_without_a_body_and_the_next_response_stays_in_its_slot(
    path, status
):
    rig = Rig(Routes(Service(4)))
    protocol, transport = rig.connect()
    protocol.data_received(get(path, method="HEAD") + get("/health"))
    await rig.loop.settle()
    wire = parse_responses(transport.take(), heads=(True, False))
    head, after = wire.answers
    assert head.status == status and head.body == b""
    assert after.status == 200 and orjson.loads(after.body) == {"status": "ok"}
    assert wire.rest == b""
    if status == 200:  # what GET would send (RFC 9110 9.3.2)
        assert head.headers["content-length"] == after.headers["content-length"]
    if status == 405:
        assert head.headers["allow"] == "POST"
    assert rig.statuses() == [status, 200]


async def test_head_gets_no_body_on_an_error_from_the_reader_either(rig):
    protocol, transport = rig.connect()
    protocol.data_received(b"HEAD / HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n")
    wire = parse_responses(transport.take(), heads=(True,))
    assert wire.answers[0].status == 413 and wire.rest == b""


# ---- half-close (defect 2) -----------------------------------------------------------------------


@pytest.mark.parametrize("extra", ["", "Connection: close\r\n"])
async def test_a_complete_request_followed_by_a_half_close_is_answered_then_closed(rig, extra):
    protocol, transport = rig.connect()
    protocol.data_received(post("/a", b"1", extra))
    assert protocol.eof_received() is True  # keep the transport open to write the answer
    await rig.loop.settle()
    (answer,) = parse_responses(transport.take()).answers
    assert answer.status == 200 and answer.headers["connection"] == "close"
    assert not transport.closed and rig.reports == []  # did the client read it? not known yet
    rig.loop.advance(GONE_CHECK_S)  # no reset came back: it was a half-close, and it read
    await rig.loop.settle()
    assert transport.closed and rig.statuses() == [200]


@pytest.mark.parametrize("how", ["reset seen", "write failed"])
async def test_answers_written_after_a_fin_to_a_client_that_has_gone_count_as_499(rig, how):
    protocol, transport = rig.connect()
    protocol.data_received(post("/hold/1", b"1") + post("/b", b"2"))
    protocol.eof_received()  # a full close: its kernel will reset what is written
    await rig.loop.settle_until(lambda: "/hold/1" in rig.handler.held)
    rig.handler.release("/hold/1")
    await rig.loop.settle()
    assert len(parse_responses(transport.take()).answers) == 2 and rig.reports == []
    if how == "reset seen":
        transport.tcp_state = TCP_CLOSE
        rig.loop.advance(GONE_CHECK_S)
    else:  # uvloop reports a write into a reset connection as a lost connection
        protocol.connection_lost(BrokenPipeError())
    await rig.loop.settle()
    assert transport.closed or how == "write failed"
    assert rig.statuses() == [499, 499]


async def test_pipelined_requests_then_a_half_close_are_all_answered(rig):
    protocol, transport = rig.connect()
    protocol.data_received(post("/hold/1", b"1") + post("/b", b"2"))
    protocol.eof_received()
    await rig.loop.settle_until(lambda: "/hold/1" in rig.handler.held)
    rig.handler.release("/hold/1")
    await rig.loop.settle()
    wire = parse_responses(transport.take())
    assert bodies(wire.data) == ["1", "2"]
    assert [a.headers["connection"] for a in wire.answers] == ["keep-alive", "close"]
    transport.tcp_state = TCP_CLOSE_WAIT  # the client has not reset: it reads
    rig.loop.advance(GONE_CHECK_S)
    await rig.loop.settle()
    assert transport.closed and rig.statuses() == [200, 200]


async def test_a_half_close_in_the_middle_of_a_request_is_answered_400(rig):
    protocol, transport = rig.connect()
    protocol.data_received(
        post("/a", b"1") + b"POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc"
    )
    protocol.eof_received()
    await rig.loop.settle()
    assert [a.status for a in parse_responses(transport.take()).answers] == [200, 400]
    rig.loop.advance(GONE_CHECK_S)
    await rig.loop.settle()
    assert transport.closed
    assert rig.statuses() == [200, 400]


async def test_a_half_close_with_requests_in_flight_moves_its_clients_to_the_lowest_class(rig):
    closed: list[object] = []
    rig.state.client_closed = closed.append
    protocol, transport = rig.connect()
    protocol.data_received(post("/hold/1", b"1") + post("/hold/2", b"2", "Client-Id: team-a\r\n"))
    await rig.loop.settle_until(lambda: "/hold/2" in rig.handler.held)
    first, second = rig.handler.seen
    assert first.client is protocol.client and second.client is not None
    assert second.client.key == "id:team-a" and protocol.client.key.startswith("conn:")
    protocol.eof_received()
    assert closed == [first.client, second.client]
    rig.handler.release("/hold/1")
    rig.handler.release("/hold/2")
    await rig.loop.settle()
    assert bodies(transport.take()) == ["1", "2"]  # still answered: it may be a half-close


async def test_each_connection_is_a_client_of_its_own_unless_a_client_id_names_one(rig):
    one, _ = rig.connect()
    two, _ = rig.connect()
    one.data_received(get("/a") + get("/b", "Client-Id: x\r\n"))
    two.data_received(get("/c", "Client-Id: x\r\n"))
    await rig.loop.settle()
    keys = [r.client.key for r in rig.handler.seen if r.client is not None]
    assert keys[0] != two.client.key and keys[1:] == ["id:x", "id:x"]


async def test_a_half_close_on_an_idle_connection_closes_it(rig):
    protocol, transport = rig.connect()
    protocol.eof_received()
    await rig.loop.settle()
    assert transport.closed and transport.buffer == b"" and rig.reports == []


# ---- a valid request pipelined before garbage (defect 3) ---------------------------------------


async def test_a_valid_request_before_garbage_is_answered_then_the_400(rig):
    protocol, transport = rig.connect()
    protocol.data_received(post("/a", b"first") + b"\x00\xffgarbage\r\n\r\n")
    await rig.loop.settle()
    wire = parse_responses(transport.take())
    assert [a.status for a in wire.answers] == [200, 400]
    assert orjson.loads(wire.answers[0].body)["body"] == "first"
    assert wire.answers[0].headers["connection"] == "keep-alive"
    assert wire.answers[1].headers["connection"] == "close"
    assert rig.statuses() == [200, 400]


async def test_the_400_waits_for_the_slow_request_ahead_of_it(rig):
    protocol, transport = rig.connect()
    protocol.data_received(post("/hold/1", b"first") + b"BAD REQUEST LINE\r\n\r\n")
    await rig.loop.settle_until(lambda: "/hold/1" in rig.handler.held)
    assert transport.buffer == b""
    rig.handler.release("/hold/1")
    await rig.loop.settle()
    assert [a.status for a in parse_responses(transport.take()).answers] == [200, 400]


# ---- drain (defect 4) ----------------------------------------------------------------------------


async def test_drain_closes_idle_connections_and_finishes_every_request_received():
    rig = Rig(body_timeout_s=5.0)  # the partial request's body arrives after DRAIN_IDLE_S
    _, idle_t = rig.connect()
    busy, busy_t = rig.connect()
    partial, partial_t = rig.connect()
    busy.data_received(get("/hold/a") + get("/hold/b") + get("/hold/c"))
    partial.data_received(b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nab")
    await rig.loop.settle_until(lambda: len(rig.handler.held) == 3)
    rig.state.drain()
    rig.loop.advance(http.DRAIN_IDLE_S)
    await rig.loop.settle_until(lambda: idle_t.closed)
    assert not busy_t.closed and not partial_t.closed  # closed only between requests
    partial.data_received(b"cd")
    for path in ("/hold/a", "/hold/b", "/hold/c"):
        rig.handler.release(path)
    await rig.loop.settle()
    busy_wire = parse_responses(busy_t.take())
    assert [a.status for a in busy_wire.answers] == [200, 200, 200]
    assert [a.headers["connection"] for a in busy_wire.answers] == ["keep-alive"] * 2 + ["close"]
    (answer,) = parse_responses(partial_t.take()).answers
    assert answer.headers["connection"] == "close" and orjson.loads(answer.body)["body"] == "abcd"
    for transport in (busy_t, partial_t):  # the clients read their answers and close
        transport.protocol.eof_received()
    assert await rig.state.wait_closed(5.0) is True
    assert not rig.state.connections and rig.statuses() == [200] * 4


async def test_a_request_sent_just_as_the_drain_begins_is_answered_with_close(rig):
    """A client sending back to back writes its next request as it reads an answer: closing
    the idle connection at that moment would lose it."""
    protocol, transport = rig.connect()
    protocol.data_received(get("/a"))
    await rig.loop.settle()
    transport.take()
    rig.state.drain()
    rig.loop.advance(http.DRAIN_IDLE_S * 0.9)
    assert not transport.closed
    protocol.data_received(get("/b"))
    await rig.loop.settle()
    (answer,) = parse_responses(transport.take()).answers
    assert answer.status == 200 and answer.headers["connection"] == "close"
    assert rig.statuses() == [200, 200]


async def test_drain_forces_the_rest_closed_when_the_grace_period_ends(rig):
    protocol, transport = rig.connect()
    protocol.data_received(get("/hold/a"))
    await rig.loop.settle_until(lambda: "/hold/a" in rig.handler.held)
    rig.state.drain()
    assert await rig.state.wait_closed(0.0) is False
    await rig.loop.settle()
    assert transport.closed and rig.statuses() == [499]


# ---- timeouts (defect 6) ------------------------------------------------------------------------


async def test_a_slow_but_steady_body_is_not_cut_off_by_the_header_timeout(rig):
    protocol, transport = rig.connect()
    protocol.data_received(b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n")
    for _ in range(10):  # 10 x 0.9 s: far past the 2 s header timeout, never a 1 s gap
        rig.loop.advance(0.9)
        protocol.data_received(b"x")
    await rig.loop.settle()
    assert bodies(transport.take()) == ["x" * 10]


async def test_a_stalled_body_gets_408(rig):
    protocol, transport = rig.connect()
    protocol.data_received(b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
    rig.loop.advance(0.99)
    assert transport.buffer == b""
    rig.loop.advance(0.02)
    (answer,) = parse_responses(transport.take()).answers
    assert answer.status == 408 and b"body" in answer.body
    assert rig.reports[0] == Seen(
        "POST", "/up", 408, pytest.approx(1.0)
    )  # its first byte to the 408


async def test_slow_headers_get_408_after_the_header_timeout(rig):
    protocol, transport = rig.connect()
    protocol.data_received(b"POST /a HTTP/1.1\r\n")
    for _ in range(3):
        rig.loop.advance(0.6)
        protocol.data_received(b"X-Drip: 1\r\n")  # progress, but the head must be done in 2 s
    rig.loop.advance(0.3)
    (answer,) = parse_responses(transport.take()).answers
    assert answer.status == 408 and answer.headers["connection"] == "close"


async def test_an_idle_connection_closes_after_the_keep_alive_timeout(rig):
    protocol, transport = rig.connect()
    protocol.data_received(get("/a"))
    await rig.loop.settle()
    rig.loop.advance(4.9)
    protocol.data_received(b"\r\n")  # bytes that begin no request do not keep it open
    rig.loop.advance(0.2)
    await rig.loop.settle()
    assert transport.closed and rig.statuses() == [200]


async def test_a_client_that_reads_no_answers_and_sends_nothing_is_dropped_when_idle(rig):
    protocol, transport = rig.connect()
    protocol.data_received(get("/a"))
    await rig.loop.settle()
    protocol.pause_writing()  # its answer is still in the transport's buffer
    rig.loop.advance(SETTINGS["keep_alive_timeout_s"])
    await rig.loop.settle()
    assert transport.aborted and rig.statuses() == [200]


async def test_a_new_request_restarts_the_idle_clock(rig):
    protocol, transport = rig.connect()
    for _ in range(3):
        rig.loop.advance(4.0)
        protocol.data_received(get("/a"))
        await rig.loop.settle()
    assert not transport.closed and rig.statuses() == [200] * 3


# ---- deadline (item 7) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "default, header, expected",
    [
        (0.0, None, None),
        (0.0, "2.5", 2.5),
        (3.0, None, 3.0),
        (3.0, "10", 3.0),  # the server default caps what a client asks
        (3.0, "0.25", 0.25),
    ],
)
async def test_request_deadline_from_the_header_and_the_server_default(default, header, expected):
    rig = Rig(request_timeout_s=default)
    protocol, _ = rig.connect()
    extra = f"Request-Timeout: {header}\r\n" if header else ""
    protocol.data_received(get("/a", extra))
    await rig.loop.settle()
    (request,) = rig.handler.seen
    assert request.deadline == (None if expected is None else rig.loop.time() + expected)


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "1e3", "", "1,2", "99999999999"])
async def test_a_bad_request_timeout_is_400(rig, value):
    protocol, transport = rig.connect()
    protocol.data_received(get("/a", f"Request-Timeout: {value}\r\n"))
    (answer,) = parse_responses(transport.take()).answers
    assert answer.status == 400 and b"Request-Timeout" in answer.body


async def test_two_request_timeouts_are_400(rig):
    protocol, transport = rig.connect()
    protocol.data_received(get("/a", "Request-Timeout: 1\r\nRequest-Timeout: 2\r\n"))
    assert parse_responses(transport.take()).answers[0].status == 400


# ---- the metrics hook: exactly one report per request -------------------------------------------


async def test_every_request_ends_in_exactly_one_report(rig):
    ok, _ = rig.connect()
    ok.data_received(get("/a") + post("/b", b"x") + get("/c", method="HEAD"))
    bad, _ = rig.connect()
    bad.data_received(get("/v") + b"GARBAGE\r\n\r\n")
    big, _ = rig.connect()
    big.data_received(b"POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n")
    _, refused_t = rig.connect()  # the fourth of max_connections=3
    await rig.loop.settle()
    assert parse_responses(refused_t.take()).answers[0].status == 503
    assert len(rig.reports) == 7
    ok.data_received(get("/hold/gone"))  # the client leaves before its answer
    await rig.loop.settle_until(lambda: "/hold/gone" in rig.handler.held)
    ok.data_received(b"GET /half HTTP/1.1\r\nHost: t\r\n")
    ok.connection_lost(ConnectionResetError())
    await rig.loop.settle()
    slow, _ = rig.connect()
    slow.data_received(b"GET /slow HTTP/1.1\r\n")
    rig.loop.advance(2.0)
    await rig.loop.settle()
    summary = sorted((r.method or "-", r.path or "-", r.status) for r in rig.reports)
    assert summary == sorted(
        [
            ("GET", "/a", 200),
            ("POST", "/b", 200),
            ("HEAD", "/c", 200),
            ("GET", "/v", 200),
            ("-", "-", 400),  # garbage: nothing known about it
            ("POST", "/big", 413),
            ("-", "-", 503),  # refused at the connection limit
            ("GET", "/hold/gone", 499),
            ("GET", "-", 499),  # begun, never complete, client gone
            # the method is known from the request line, the path once the headers are complete
            ("GET", "-", 408),
        ]
    )
    assert all(r.seconds >= 0 for r in rig.reports)


async def test_the_latency_reported_is_from_request_to_answer(rig):
    protocol, _ = rig.connect()
    protocol.data_received(get("/hold/a"))
    await rig.loop.settle_until(lambda: "/hold/a" in rig.handler.held)
    rig.loop.advance(0.25)
    rig.handler.release("/hold/a")
    await rig.loop.settle()
    assert rig.reports == [Seen("GET", "/hold/a", 200, 0.25)]


async def test_a_client_that_leaves_cancels_its_handlers(rig):
    protocol, _ = rig.connect()
    protocol.data_received(get("/hold/a") + get("/hold/b"))
    await rig.loop.settle_until(lambda: len(rig.handler.held) == 2)
    futures = list(rig.handler.held.values())
    protocol.connection_lost(ConnectionResetError())
    await rig.loop.settle()
    assert all(f.cancelled() for f in futures)
    assert rig.statuses() == [499, 499] and not rig.state.connections


async def test_the_connection_limit_answers_503_and_frees_its_slot(rig):
    conns = [rig.connect() for _ in range(3)]
    _, refused = rig.connect()
    answer = parse_responses(refused.take()).answers[0]
    assert answer.status == 503 and answer.headers["retry-after"] == "1"
    conns[0][1].close()
    await rig.loop.settle()
    protocol, transport = rig.connect()
    protocol.data_received(get("/a"))
    await rig.loop.settle()
    assert parse_responses(transport.take()).answers[0].status == 200
