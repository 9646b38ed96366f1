"""The HTTP protocol over real sockets, with a handler that echoes what it received, so every
assertion is about the protocol layer: keep-alive, pipelining order, chunked bodies,
100-continue, limits and the errors they answer."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator

import orjson
import pytest

from solution.server import config, http
from solution.server.http import Request, Response
from tests.conftest import ComputeGate, until


async def echo(request: Request) -> Response:
    if request.path == "/slow":
        await asyncio.sleep(0.2)
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


@dataclasses.dataclass
class Server:
    port: int
    state: http.ServerState
    writers: list[asyncio.StreamWriter] = dataclasses.field(default_factory=list)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    settings = config.load(
        [],
        environ={
            "CLS_MAX_BODY_BYTES": "1000",
            "CLS_MAX_HEADER_BYTES": "2000",
            "CLS_KEEP_ALIVE_TIMEOUT_S": "0.5",
            "CLS_HEADER_TIMEOUT_S": "0.5",
            "CLS_MAX_CONNECTIONS": "8",
            "CLS_MAX_TEXTS_PER_REQUEST": "4",
            "CLS_QUEUE_TEXTS": "8",
        },
    )
    state = http.ServerState(settings, echo)
    srv = await http.serve(state, "127.0.0.1", 0)
    server = Server(srv.sockets[0].getsockname()[1], state)
    yield server
    for writer in server.writers:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    srv.close()
    for conn in list(state.connections):
        conn.close_when_idle()
    await srv.wait_closed()


async def connect(server: Server) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    server.writers.append(writer)  # closed by the fixture
    return reader, writer


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


def post(path: str, body: bytes, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode()
        + body
    )


async def test_keep_alive_serves_several_requests_on_one_connection(server):
    reader, writer = await connect(server)
    for i in range(3):
        writer.write(post("/a", f'"{i}"'.encode()))
        status, headers, body = await read_response(reader)
        assert status == 200 and headers["connection"] == "keep-alive"
        assert orjson.loads(body)["body"] == f'"{i}"'
    writer.close()


async def test_pipelined_requests_are_answered_in_order(server):
    reader, writer = await connect(server)
    # the first is slow, the second fast: responses must still come in request order
    writer.write(post("/slow", b"1") + post("/fast", b"2") + post("/fast", b"3"))
    bodies = [orjson.loads((await read_response(reader))[2])["body"] for _ in range(3)]
    assert bodies == ["1", "2", "3"]
    writer.close()


async def test_chunked_body_is_reassembled(server):
    reader, writer = await connect(server)
    writer.write(
        b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    status, _, body = await read_response(reader)
    assert status == 200 and orjson.loads(body)["body"] == "hello world"
    writer.close()


async def test_expect_100_continue_gets_an_interim_response(server):
    reader, writer = await connect(server)
    writer.write(
        b"POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    )
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert interim.startswith(b"HTTP/1.1 100 Continue")
    writer.write(b"body")
    status, _, body = await read_response(reader)
    assert status == 200 and orjson.loads(body)["body"] == "body"
    writer.close()


async def test_expect_100_continue_over_the_limit_is_refused_before_the_body(server):
    reader, writer = await connect(server)
    writer.write(
        b"POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n"
    )
    status, headers, body = await read_response(reader)
    assert status == 413 and headers["connection"] == "close"
    assert "error" in orjson.loads(body)


async def test_http_1_0_closes_after_the_response(server):
    reader, writer = await connect(server)
    writer.write(b"POST /x HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi")
    status, headers, _ = await read_response(reader)
    assert status == 200 and headers["connection"] == "close"
    assert await asyncio.wait_for(reader.read(), 5) == b""


async def test_http_1_0_keep_alive_when_asked(server):
    reader, writer = await connect(server)
    for _ in range(2):
        writer.write(b"POST /x HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi")
        status, headers, _ = await read_response(reader)
        assert status == 200 and headers["connection"] == "keep-alive"
    writer.close()


@pytest.mark.parametrize(
    "raw, status",
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n", 413),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"GET /" + b"a" * 3000 + b" HTTP/1.1\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nX-Big: " + b"b" * 3000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400),
    ],
)
async def test_malformed_requests_get_a_json_error_and_a_closed_connection(server, raw, status):
    reader, writer = await connect(server)
    writer.write(raw)
    got, headers, body = await read_response(reader)
    assert got == status
    assert headers["connection"] == "close"
    assert orjson.loads(body)["error"]
    assert b"Traceback" not in body
    assert await asyncio.wait_for(reader.read(), 5) == b""


async def test_chunked_body_over_the_limit_is_413(server):
    reader, writer = await connect(server)
    chunk = b"3e8\r\n" + b"a" * 1000 + b"\r\n"
    writer.write(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 2)
    status, _, _ = await read_response(reader)
    assert status == 413


async def test_slow_headers_are_cut_off_with_408(server):
    reader, writer = await connect(server)
    writer.write(b"POST / HTTP/1.1\r\nHost: t\r\n")  # and never finish
    status, headers, _ = await read_response(reader)
    assert status == 408 and headers["connection"] == "close"


async def test_idle_keep_alive_connection_is_closed(server):
    reader, writer = await connect(server)
    writer.write(post("/a", b"1"))
    await read_response(reader)
    assert await asyncio.wait_for(reader.read(), 3) == b""  # closed after 0.5 s idle


async def test_connection_limit_answers_503_and_others_still_work(server):
    held = [await connect(server) for _ in range(8)]
    await asyncio.sleep(0.05)
    reader, writer = await connect(server)
    status, headers, _ = await read_response(reader)
    assert status == 503 and headers["retry-after"] == "1"
    held[0][1].close()
    await asyncio.sleep(0.05)
    reader, writer = await connect(server)
    writer.write(post("/a", b"ok"))
    assert (await read_response(reader))[0] == 200
    for _, w in held[1:]:
        w.close()


async def test_server_keeps_serving_after_protocol_errors(server):
    for raw in (b"\x00\xff\xfe garbage\r\n\r\n", b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n"):
        reader, writer = await connect(server)
        writer.write(raw)
        assert (await read_response(reader))[0] == 400
    reader, writer = await connect(server)
    writer.write(post("/a", b"fine"))
    assert (await read_response(reader))[0] == 200


async def test_client_eof_abandons_requests_in_flight(server):
    reader, writer = await connect(server)
    writer.write(post("/slow", b"1"))
    await asyncio.sleep(0.05)
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, nothing computed for it


async def test_eof_in_the_middle_of_a_request_is_answered_400(server):
    reader, writer = await connect(server)
    writer.write(b"POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
    writer.write_eof()
    status, headers, _ = await read_response(reader)
    assert status == 400 and headers["connection"] == "close"


async def test_a_client_that_disconnects_before_its_batch_costs_no_compute(engine):
    """connection_lost cancels the request; the engine drops its text before compute."""
    from solution.server.engine import BatchReport
    from solution.server.routes import Routes

    settings = config.load([], environ={})
    srv = await http.serve(http.ServerState(settings, Routes(engine, 4)), "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    reports: list[BatchReport] = []
    engine.observers.append(reports.append)
    gone_before = engine.dropped_texts["client_gone"]
    try:
        with ComputeGate(engine) as gate:
            busy, ahead = await gate.fill_pipeline()
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(post("/process", b'"the client leaves"'))
            await until(lambda: engine.waiting_texts == 2)
            writer.close()
            await until(lambda: engine.waiting_texts == 1)  # left the queue at once
            gate.release()
            await asyncio.wait_for(asyncio.gather(busy, ahead), 10)
            await until(lambda: engine.idle)
    finally:
        engine.observers.remove(reports.append)
        srv.close()
    assert sum(r.texts for r in reports) == 2
    assert engine.dropped_texts["client_gone"] - gone_before == 1


@pytest.mark.parametrize(
    "target, path",
    [
        (b"/a?x=1", "/a"),
        (b"/a#frag", "/a"),
        (b"http://host:8000/b?q", "/b"),
        (b"/", "/"),
    ],
)
async def test_request_target_forms_resolve_to_the_path(server, target, path):
    reader, writer = await connect(server)
    writer.write(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % target)
    status, _, body = await read_response(reader)
    assert status == 200 and orjson.loads(body)["path"] == path
