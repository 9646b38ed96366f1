"""The client library against HTTP and gRPC front-ends on the shared engine: the same results
from all four clients and from raw HTTP, and the three kinds of error."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from solution.client import (
    AsyncGrpcClient,
    AsyncHttpClient,
    ClientError,
    GrpcClient,
    HttpClient,
    Prediction,
    Refused,
    Result,
    TimedOut,
    Unreachable,
    from_json,
    to_json,
)
from solution.client.grpc_client import wire_text
from solution.server.engine import Engine
from tests.standin_texts import KNOWN, mismatches

TEXTS = [
    "",
    "This is how true happiness looks like 👍😜",
    "controls \u0000\u0007\t\n\u001f and NUL",
    "see https://t.co/AbC123 or 1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
    "Это был лучший концерт 我今天很高兴",
    "word " * 100,
    "lone \ud800 surrogate, and a pair \ud83d\ude00",  # a str JSON or surrogateescape can give
]

CLIENTS = ["http", "http-async", "grpc", "grpc-async"]


class Caller:
    """One client behind one async interface; sync clients run in a thread, since the servers
    run in this test's event loop."""

    def __init__(self, kind: str, target: str, timeout: float = 10.0):
        self.kind = kind
        make: dict[str, Callable[..., Any]] = {
            "http": HttpClient,
            "http-async": AsyncHttpClient,
            "grpc": GrpcClient,
            "grpc-async": AsyncGrpcClient,
        }
        self.client = make[kind](target, timeout)

    async def call(self, method: str, arg: Any) -> Any:
        fn = getattr(self.client, method)
        if self.kind.endswith("async"):
            return await fn(arg)
        return await asyncio.to_thread(fn, arg)

    async def classify(self, text: str) -> Result:
        return await self.call("classify", text)

    async def classify_batch(self, texts: list[str]) -> list[Result]:
        return await self.call("classify_batch", texts)

    async def close(self) -> None:
        if self.kind.endswith("async"):
            await self.client.close()
        else:
            self.client.close()


def target_of(frontends, kind: str) -> str:
    return frontends.grpc_target if kind.startswith("grpc") else frontends.http_target


@pytest.fixture(params=CLIENTS)
async def caller(request, frontends):
    c = Caller(request.param, target_of(frontends, request.param))
    yield c
    await c.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


async def test_every_client_returns_exactly_what_http_process_answers(frontends, engine: Engine):
    callers = [Caller(kind, target_of(frontends, kind)) for kind in CLIENTS]
    try:
        async with httpx.AsyncClient(base_url=f"http://{frontends.http_target}") as raw:
            # one request at a time, so each is a batch of its own and the float sums are equal
            for text in TEXTS:
                answer = await raw.post("/process", content=json.dumps(text))  # escapes surrogates
                for caller in callers:
                    got = await caller.classify(text)
                    assert list(got) == engine.keys
                    assert all(isinstance(p, Prediction) for p in got.values())
                    assert to_json(got) == answer.json(), (caller.kind, text[:30])
            answer = await raw.post("/process", content=json.dumps(TEXTS))
            for caller in callers:
                got_many = await caller.classify_batch(TEXTS)
                # byte for byte: the same keys in the same order, the same float64 scores
                assert orjson.dumps(to_json(got_many)) == answer.content, caller.kind
    finally:
        for caller in callers:
            await caller.close()


async def test_every_client_gets_the_rules_labels_of_known_texts(caller: Caller):
    """The trained stand-ins' answers, as each client returns them (``standins/rules.py``)."""
    results = await caller.classify_batch(list(KNOWN))
    for text, result in zip(KNOWN, results, strict=True):
        labels = {key: p.label for key, p in result.items()}
        assert not mismatches(text, labels), (caller.kind, text, mismatches(text, labels))
    one = await caller.classify("What a terrible day, everything went wrong")
    assert one["cardiffnlp"].label == "NEGATIVE" and one["ivanlau"].label == "English"


async def test_a_closed_port_is_unreachable():
    for kind in CLIENTS:
        c = Caller(kind, f"127.0.0.1:{closed_port()}")
        try:
            with pytest.raises(Unreachable, match="cannot reach"):
                await c.classify("hello")
        finally:
            await c.close()


async def test_a_refusal_carries_status_and_message(frontends, caller: Caller, settings):
    with pytest.raises(Refused) as info:
        await caller.classify_batch(["x"] * (settings.max_texts_per_request + 1))
    status = "INVALID_ARGUMENT" if caller.kind.startswith("grpc") else 400
    assert info.value.status == status
    assert info.value.message.startswith(f"at most {settings.max_texts_per_request} texts")
    assert str(status) in str(info.value) and "\n" not in str(info.value)


async def test_no_answer_within_the_timeout_is_timed_out(frontends, gate):
    await gate.close()  # the engine answers nothing until the gate opens
    for kind in CLIENTS:
        c = Caller(kind, target_of(frontends, kind), timeout=0.3)
        try:
            with pytest.raises(TimedOut):
                await c.classify("held up")
        finally:
            await c.close()


def test_errors_share_one_base():
    assert all(issubclass(e, ClientError) for e in (Unreachable, TimedOut, Refused))


def test_json_round_trip_keeps_order():
    value = {"b": {"score": 0.5, "label": "X"}, "a": {"score": 0.25, "label": "Y"}}
    result = from_json(value)
    assert result == {"b": Prediction(0.5, "X"), "a": Prediction(0.25, "Y")}
    assert list(to_json(result)) == ["b", "a"] and to_json([result]) == [value]


def test_wire_text_is_what_the_http_server_makes_of_the_same_str():
    assert wire_text("plain ✓") == "plain ✓"
    assert wire_text("a\ud800b") == "a\ufffdb"  # lone surrogate: U+FFFD, as the server makes it
    assert wire_text("\ud83d\ude00") == "😀"  # a pair, as JSON's \\ud83d\\ude00 decodes
