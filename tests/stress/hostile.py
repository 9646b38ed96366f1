"""Malformed and hostile HTTP requests, generated from a seed so that any failure replays.

Each case is raw bytes plus what a correct server must do with them: ``"ok"`` (a valid request,
must be answered 200), ``"reject"`` (must get a 4xx, never a 5xx or silence) or ``"any"``
(either, e.g. a random mutation that may or may not still be valid). Nothing here knows the
server's internals: it speaks bytes, like an attacker.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from solution.server.standins.corpus import reference_texts


@dataclass(frozen=True)
class Case:
    kind: str
    data: bytes
    expect: str  # "ok" | "reject" | "any"


def request(
    body: bytes,
    headers: str = "",
    method: str = "POST",
    path: str = "/process",
    version: str = "HTTP/1.1",
    length: str | None = None,
) -> bytes:
    cl = f"Content-Length: {len(body) if length is None else length}\r\n"
    head = (
        f"{method} {path} {version}\r\nHost: x\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\n{cl}"
    )
    return (head + headers + "\r\n").encode() + body


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def valid(rng: random.Random) -> Case:
    text = reference_texts(1, seed=rng.randrange(1 << 30))[0]
    if rng.random() < 0.5:
        return Case("valid", request(_json(text)), "ok")
    return Case("valid-array", request(_json([text, "", text[:10]])), "ok")


def hostile_text(rng: random.Random) -> Case:
    """Valid JSON strings a client may legitimately send: all must be answered 200."""
    choices = [
        "",
        "".join(chr(c) for c in range(32)),  # every control character, NUL included
        "\u0000" * rng.randint(1, 500),
        "🔥" * rng.randint(1, 2000),
        "a" * rng.randint(1000, 50_000),  # far beyond 512 tokens
        "https://" + "x" * 3000,
        "\u202e\u200b\ufeff RTL and zero-width",
        "".join(chr(rng.randint(0x20, 0x2FFF)) for _ in range(rng.randint(1, 300))),
    ]
    return Case("hostile-text", request(_json(rng.choice(choices))), "ok")


def bad_json(rng: random.Random) -> Case:
    depth = rng.randint(1000, 100_000)
    bodies: list[Callable[[], bytes]] = [  # built lazily: some are megabytes
        lambda: b"[" * depth + b"]" * depth,  # deeply nested
        lambda: b'{"a":' * 2000 + b"1" + b"}" * 2000,
        lambda: b"\xff\xfe\xfd",  # invalid UTF-8
        lambda: b'"\xc3\x28"',  # invalid UTF-8 inside a string
        lambda: b'"unterminated',
        lambda: b"",
        lambda: b"nul\x00l",
        lambda: _json(rng.choice([1, 1.5, None, True, {"text": "x"}, [1, 2], ["a", ["b"]]])),
        lambda: _json(["x"] * 100_000),  # too many texts (and maybe too large)
        lambda: b'"' + b"a" * 2_000_000 + b'"',  # over the body limit
    ]
    return Case("bad-json", request(rng.choice(bodies)()), "reject")


def bad_request_line(rng: random.Random) -> Case:
    lines = [
        b"GET\r\n\r\n",
        b"POST /process\r\n\r\n",
        b"POST /process HTTP/9.9\r\n\r\n",
        b"P\x00ST /process HTTP/1.1\r\n\r\n",
        b" / HTTP/1.1\r\n\r\n",
        b"POST " + b"/" * rng.randint(20_000, 70_000) + b" HTTP/1.1\r\n\r\n",
        bytes(rng.randrange(256) for _ in range(rng.randint(1, 200))) + b"\r\n\r\n",
        b"GET / HTTP/1.1\nHost: x\n\n",  # bare LF
    ]
    if rng.random() < 0.02:  # blank lines before a request line are ignored (RFC 9112 2.2)
        return Case("blank-lines", b"\r\n" * rng.randint(1, 5), "any")
    return Case("request-line", rng.choice(lines), "reject")


def bad_headers(rng: random.Random) -> Case:
    body = _json("x")
    headers = [
        "No-Colon-Here\r\n",
        "Bad Name: v\r\n",
        "X: a\x00b\r\n",
        " Folded: continuation\r\n",
        "X-Big: " + "b" * rng.randint(20_000, 80_000) + "\r\n",
        "".join(f"X-{i}: {i}\r\n" for i in range(rng.randint(2000, 5000))),
        "Transfer-Encoding: chunked\r\n",  # with Content-Length: smuggling shape
        "Content-Length: 5\r\n",  # a second, conflicting length
    ]
    return Case("headers", request(body, rng.choice(headers)), "reject")


def bad_length(rng: random.Random) -> Case:
    body = _json("hello")
    lengths = [
        "-1",
        "abc",
        "99999999999999999999999",
        "1e3",
        str(len(body) + 5),
        "0x10",
        str(10**12),
    ]
    return Case("content-length", request(body, length=rng.choice(lengths)), "reject")


def bad_chunked(rng: random.Random) -> Case:
    head = b"POST /process HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    bodies = [
        b"zz\r\nabc\r\n0\r\n\r\n",
        b"5\r\nabc\r\n0\r\n\r\n",  # shorter than declared
        b"3\r\nabcdef\r\n0\r\n\r\n",  # longer than declared
        b"ffffffffffffffffffff\r\n",  # size overflow
        b"-5\r\nabcde\r\n0\r\n\r\n",
        b'3\r\n"ab',  # truncated
        b"100000\r\n" + b"a" * 1000,  # over the body limit, truncated
    ]
    return Case("chunked", head + rng.choice(bodies), "reject")


def pipelined_garbage(rng: random.Random) -> Case:
    """A valid request followed by garbage: the first must be answered, then a 400."""
    garbage = bytes(rng.randrange(256) for _ in range(rng.randint(1, 100))) + b"\r\n\r\n"
    return Case("pipelined-garbage", request(_json("first")) + garbage, "any")


def mutation(rng: random.Random) -> Case:
    data = bytearray(request(_json(reference_texts(1, seed=rng.randrange(1 << 30))[0])))
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(data))
        op = rng.random()
        if op < 0.4:
            data[i] = rng.randrange(256)
        elif op < 0.7:
            del data[i]
        else:
            data.insert(i, rng.randrange(256))
    return Case("mutation", bytes(data), "any")


GENERATORS: list[tuple[Callable[[random.Random], Case], float]] = [
    (valid, 0.15),
    (hostile_text, 0.10),
    (bad_json, 0.12),
    (bad_request_line, 0.12),
    (bad_headers, 0.10),
    (bad_length, 0.10),
    (bad_chunked, 0.10),
    (pipelined_garbage, 0.06),
    (mutation, 0.15),
]


def cases(n: int, seed: int = 0) -> Iterator[Case]:
    rng = random.Random(seed)
    generators, weights = zip(*GENERATORS, strict=True)
    for _ in range(n):
        yield rng.choices(generators, weights)[0](rng)
