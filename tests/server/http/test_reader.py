"""The request reader alone: bytes and a time in, events out. No protocol, no loop."""

from __future__ import annotations

import gc
import types

import pytest

from solution.server.config import Settings
from solution.server.http.messages import Request, RequestHead
from solution.server.http.reader import EXPECT_CONTINUE, Phase, RequestError, RequestReader

SETTINGS = Settings(max_body_bytes=100, max_header_bytes=200, request_timeout_s=0.0)
GET = b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n"


def reader(**changes: object) -> RequestReader:
    return RequestReader(SETTINGS.replace(**changes))


def test_one_feed_can_complete_several_requests_in_order():
    r = reader()
    events = r.feed(GET + b"POST /b HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi", 5.0)
    assert [(e.method, e.path, e.body) for e in events] == [
        ("GET", "/a", b""),
        ("POST", "/b", b"hi"),
    ]
    assert r.phase is Phase.IDLE


def test_a_request_split_anywhere_reads_the_same():
    data = b"POST /b HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nX-Y: z\r\n\r\nhello"
    whole = reader().feed(data, 0.0)
    for cut in range(1, len(data)):
        r = reader()
        events = r.feed(data[:cut], 0.0) + r.feed(data[cut:], 1.0)
        assert events == whole, cut


def test_phases_and_their_clocks():
    r = reader()
    r.feed(b"POST /b HTTP/1.1\r\n", 1.0)
    assert r.phase is Phase.HEAD and r.started == 1.0
    r.feed(b"Host: t\r\nContent-Length: 4\r\n\r\nab", 2.0)
    assert r.phase is Phase.BODY and r.progress == 2.0
    r.feed(b"c", 3.0)
    assert r.progress == 3.0
    r.restart_clocks(9.0)
    assert (r.started, r.progress) == (9.0, 9.0)
    (request,) = r.feed(b"d", 10.0)
    assert request.body == b"abcd" and r.phase is Phase.IDLE


def test_an_error_comes_after_the_requests_completed_before_it_and_ends_reading():
    r = reader()
    events = r.feed(GET + b"\x00garbage\r\n\r\n", 0.0)
    assert isinstance(events[0], Request)
    assert isinstance(events[1], RequestError) and events[1].status == 400
    assert r.phase is Phase.CLOSED and r.feed(GET, 1.0) == []


def test_a_request_that_asks_to_close_ends_reading_silently():
    r = reader()
    events = r.feed(b"GET /a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" + GET, 0.0)
    assert len(events) == 1 and events[0].keep_alive is False
    assert r.phase is Phase.CLOSED


def test_http_1_0_is_not_kept_alive_unless_asked():
    assert reader().feed(b"GET / HTTP/1.0\r\n\r\n", 0)[0].keep_alive is False
    ka = reader().feed(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0)[0]
    assert ka.keep_alive is True


def test_what_a_refusal_knows_of_its_request():
    (error,) = reader().feed(b"POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 500\r\n\r\n", 3.0)
    assert (error.status, error.head, error.started) == (413, RequestHead("POST", "/big"), 3.0)
    (error,) = reader().feed(b"\x00", 4.0)
    assert error.head == RequestHead(None, None) and error.started == 4.0


def test_one_header_that_never_ends_is_431_once_whole_feeds_exceed_the_limit():
    r = reader()
    assert r.feed(b"GET / HTTP/1.1\r\nX: ", 0) == []
    assert r.feed(b"x" * 150, 0) == []  # llhttp has not reported the header yet
    (error,) = r.feed(b"x" * 60, 0)
    assert error.status == 431


def test_bodies_over_the_limit_are_413_declared_or_chunked():
    (error,) = reader().feed(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 101\r\n\r\n", 0)
    assert error.status == 413
    r = reader()
    r.feed(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n", 0)
    (error,) = r.feed(b"65\r\n" + b"a" * 101 + b"\r\n", 0)
    assert error.status == 413


@pytest.mark.parametrize(
    "expect, body, sent",
    [
        (b"100-continue", b"Content-Length: 4", True),
        (b"100-Continue", b"Transfer-Encoding: chunked", True),
        (b"100-continue", b"Content-Length: 0", False),  # no body: nothing to wait for
        (b"something", b"Content-Length: 4", False),
    ],
)
def test_100_continue_is_asked_for_only_when_a_body_follows(expect, body, sent):
    r = reader()
    events = r.feed(b"POST / HTTP/1.1\r\nHost: t\r\nExpect: %s\r\n%s\r\n\r\n" % (expect, body), 0)
    assert (EXPECT_CONTINUE in events) is sent


def test_timeouts_name_the_phase_and_are_none_between_requests():
    r = reader(header_timeout_s=2.0, body_timeout_s=3.0)
    assert r.expire() is None
    r = reader(header_timeout_s=2.0)
    r.feed(b"GET /a HTTP/1.1\r\n", 1.0)
    error = r.expire()
    assert error is not None and error.status == 408 and "headers" in error.message
    r = reader(body_timeout_s=3.0)
    r.feed(b"POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nab", 1.0)
    error = r.expire()
    assert error is not None and "body stalled" in error.message
    assert error.head == RequestHead("POST", "/a")


def test_eof_and_abandon_report_only_a_request_begun():
    r = reader()
    r.feed(GET, 0)
    assert r.eof() == []
    r = reader()
    r.feed(b"GET /a HT", 1.0)
    (error,) = r.eof()
    assert error.status == 400 and r.phase is Phase.CLOSED
    r = reader()
    r.feed(b"GET /a HT", 1.0)
    gone = r.abandon()
    assert gone is not None and gone.status == 499 and gone.started == 1.0
    assert reader().abandon() is None


def reachable(root: object) -> list[object]:
    """The objects ``root`` keeps alive (as the garbage collector sees them), short of modules,
    classes and functions (whose globals reach everything)."""
    seen, todo, found = {id(root)}, [root], []
    while todo:
        for ref in gc.get_referents(todo.pop()):
            if isinstance(ref, type | types.ModuleType | types.FunctionType):
                continue
            if id(ref) not in seen:
                seen.add(id(ref))
                todo.append(ref)
                found.append(ref)
    return found


def test_the_reader_keeps_no_request_it_handed_out_nor_a_body_it_dropped():
    """The httptools parser and the reader hold each other: a cycle that outlives the
    connection until a full collection. It must not keep requests and bodies (megabytes under
    a flood of clients sending large requests and closing)."""
    body = b"[" + b'"a text", ' * 5 + b'"the end"]'
    r = reader()
    (request,) = r.feed(
        b"POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body) + body, 1.0
    )
    assert isinstance(request, Request) and request.body == body
    assert not any(x is request for x in reachable(r))
    r.feed(
        b"POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:30], 2.0
    )
    assert r.abandon() is not None  # the client left half-way through the body
    assert not any(isinstance(x, bytes) and x.startswith(b'["a text"') for x in reachable(r))


@pytest.mark.parametrize(
    "default, header, budget",
    [(0.0, None, None), (0.0, b"1.5", 1.5), (2.0, None, 2.0), (2.0, b"5", 2.0), (2.0, b"0.5", 0.5)],
)
def test_the_deadline_is_the_smaller_of_the_header_and_the_server_default(default, header, budget):
    extra = b"Request-Timeout: %s\r\n" % header if header else b""
    (request,) = reader(request_timeout_s=default).feed(
        b"GET /a HTTP/1.1\r\nHost: t\r\n%s\r\n" % extra, 100.0
    )
    assert request.deadline == (None if budget is None else 100.0 + budget)


@pytest.mark.parametrize(
    "host, ok",
    [
        (b"", True),
        (b"example.org", True),
        (b"a:8000", True),
        (b"[::1]:1", True),
        (b"a b", False),
        (b"a/b", False),
        (b"a@b", False),
    ],
)
def test_host_values(host, ok):
    (event,) = reader().feed(b"GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % host, 0)
    assert isinstance(event, Request) is ok


CHUNKED = b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(
    "parts",
    [
        [CHUNKED + b"FFFFFFFFFFFFFFFF\r\n"],  # llhttp takes it (it fits 64 bits) and waits
        [CHUNKED, b"FFFFFFFFFFFFFFFF\r\n"],
        [CHUNKED + b"5\r\nhello\r\n", b"FFFFF", b"FFFFFFFFFFF;ext=1\r\n"],  # the line in parts
        [CHUNKED + b"FFFFFFFFFFFF"],  # a line not yet ended that can only declare more
        [CHUNKED + b"5\r\nhello\r\n60\r\n"],  # within the limit alone, not with what came first
    ],
)
def test_a_chunk_size_beyond_the_body_limit_is_413_at_once(parts: list[bytes]):
    """Found by a held-out attack: it was a 408 after the body timeout."""
    r = reader()
    events = [event for part in parts for event in r.feed(part, 0.0)]
    assert [(type(e), getattr(e, "status", None)) for e in events] == [(RequestError, 413)]
    assert r.phase is Phase.CLOSED


def test_chunk_sizes_within_the_limit_and_hex_looking_data_read_as_before():
    r = reader()
    events = r.feed(CHUNKED + b"5\r\nabcde\r\n", 0.0)  # data that looks like a size line
    events += r.feed(b"a\r\nffffffffff\r\n", 0.0) + r.feed(b"0\r\n", 0.0)
    events += r.feed(b"abc: trailer\r\n", 0.0) + r.feed(b"\r\n", 0.0)  # a hex-looking trailer
    assert [(type(e), e.body) for e in events] == [(Request, b"abcdeffffffffff")]  # type: ignore[union-attr]
