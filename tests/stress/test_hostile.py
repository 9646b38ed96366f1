"""A fast sample of the stress run (``make stress`` sends 100,000): hostile HTTP and gRPC against a
live server, a burst of concurrent gRPC calls, and properties of the decoder and the protocol under
arbitrary bytes."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from solution.server import config
from solution.server.errors import InvalidInput
from solution.server.http import protocol as http
from solution.server.http.routes import decode_request, decode_texts
from tests.stress.hostile import KEYS, cases
from tests.stress.run import FLOOD_CONNECTIONS, report, stress


def test_generator_is_deterministic_and_covers_every_kind():
    first = list(cases(1000, seed=1))
    assert first == list(cases(1000, seed=1))
    kinds = {c.kind for c in first}
    assert {
        "valid",
        "bad-json",
        "request-line",
        "headers",
        "content-length",
        "chunked",
        "pipelined-garbage",
        "mutation",
        "hostile-text",
        "head",
        "half-close",
        "strict",
        "utf-8",
        "deadline",
        "deep-pipelining",
        "object",
        "object-bad",
    } <= kinds


def test_a_sample_of_hostile_http_and_grpc_requests_is_answered_correctly(standins_tiny, capsys):
    tally, summary = stress(
        1500,
        concurrency=16,
        seed=7,
        timeout_s=10.0,
        target=None,
        standins=standins_tiny,
        grpc_n=300,
        grpc_flood=500,
    )
    ok = report(tally, summary)
    light_calls = sum(n for k, n in tally.statuses.items() if str(k).startswith("grpc flood-light"))
    assert tally.sent == 1800 + 500 * len(FLOOD_CONNECTIONS) + light_calls
    assert tally.statuses["grpc INVALID_ARGUMENT"] > 0 and tally.statuses["grpc OK"] > 0
    assert tally.statuses["grpc flood OK"] > 0
    assert not tally.violations, tally.examples
    assert tally.hung == 0
    assert summary["server_alive"] is True and summary["exit_code"] == 0
    assert summary["normal_request_after"] == 200
    assert ok


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_decoding_arbitrary_bytes_either_succeeds_or_says_why(body):
    try:
        texts, _ = decode_texts(body)
    except InvalidInput as exc:
        assert str(exc)
    else:
        assert all(isinstance(t, str) for t in texts)
        for t in texts:
            t.encode("utf-8")  # no lone surrogates reach the tokenizer


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = st.sampled_from(["inputs", "models", "top_k", "raw_scores", "truncate"])


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(FIELDS, JSON, max_size=5))
def test_any_object_body_decodes_to_checked_options_or_says_why(body):
    import json

    try:
        texts, _, options = decode_request(json.dumps(body).encode())
        assert options is not None
        options.check(KEYS)
    except InvalidInput as exc:
        assert str(exc)
    else:
        assert all(isinstance(t, str) for t in texts)
        assert options.top_k is None or options.top_k >= 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(), max_size=5))
def test_any_array_of_strings_round_trips(texts):
    import json

    assert decode_texts(json.dumps(texts).encode()) == (
        [t.encode("utf-8", "replace").decode() for t in texts],
        False,
    )


async def ok(request: http.Request) -> http.Response:
    return http.Response(200, b"{}")


@pytest.fixture(scope="module")
async def echo_server():
    state = http.ServerState(config.load([], environ={"CLS_HEADER_TIMEOUT_S": "2"}), ok)
    server = await http.serve(state, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    prefix=st.sampled_from(
        [b"", b'POST /process HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n""']
    ),
    noise=st.binary(max_size=300),
)
async def test_protocol_answers_or_closes_on_arbitrary_bytes(echo_server, prefix, noise):
    reader, writer = await asyncio.open_connection("127.0.0.1", echo_server)
    try:
        writer.write(prefix + noise)
        writer.write_eof()
        data = await asyncio.wait_for(reader.read(-1), 5)  # never hangs
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    for line in data.split(b"\r\n"):
        if line.startswith(b"HTTP/1.1 "):
            status = int(line.split()[1])
            assert status in (200, 400, 404, 405, 408, 413, 431, 501, 505), line
    assert b"Traceback" not in data
