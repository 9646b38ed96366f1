"""Malformed and hostile HTTP requests, generated from a seed so that any failure replays.

Each case is raw bytes plus what a correct server must do with them: ``"ok"`` (a valid request,
must be answered 200), ``"reject"`` (must be refused: a 4xx, or 501/505 for what the server does
not implement; never a 500 or silence) or ``"any"`` (either, e.g. a random mutation that may or
may not still be valid). Shapes whose every answer is known also list ``answers``: the exact
(status, method) sequence on the wire, read with HEAD's bodiless framing, with nothing after it.
``half_close`` sends EOF after the bytes (the client shuts its side, as ``nc -N`` does). Nothing
here knows the server's internals: it speaks bytes, like an attacker.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from solution.server.compute.models import load_model_specs
from solution.server.config import DEFAULT_MODEL_CONFIG
from solution.standins.corpus import reference_texts

KEYS = [spec.key for spec in load_model_specs(DEFAULT_MODEL_CONFIG)]  # the API's response keys

Answer = tuple[int, str]  # (status, method of the request it answers)


@dataclass(frozen=True)
class Case:
    kind: str
    data: bytes
    expect: str  # "ok" | "reject" | "any"
    answers: tuple[Answer, ...] = ()  # when known: exactly these, in order
    half_close: bool = True


def request(
    body: bytes,
    headers: str = "",
    method: str = "POST",
    path: str = "/process",
    version: str = "HTTP/1.1",
    length: str | None = None,
    close: bool = True,
) -> bytes:
    cl = f"Content-Length: {len(body) if length is None else length}\r\n"
    connection = "Connection: close\r\n" if close else ""
    head = (
        f"{method} {path} {version}\r\nHost: x\r\n{connection}"
        f"Content-Type: application/json\r\n{cl}"
    )
    return (head + headers + "\r\n").encode() + body


def bare(method: str, path: str, close: bool = False, version: str = "HTTP/1.1") -> bytes:
    """A request without a body."""
    connection = "Connection: close\r\n" if close else ""
    return f"{method} {path} {version}\r\nHost: x\r\n{connection}\r\n".encode()


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def valid(rng: random.Random) -> Case:
    """Valid requests, half of them followed by a half-close, which must not lose them."""
    text = reference_texts(1, seed=rng.randrange(1 << 30))[0]
    half_close = rng.random() < 0.5
    if rng.random() < 0.5:
        return Case("valid", request(_json(text)), "ok", half_close=half_close)
    return Case("valid-array", request(_json([text, "", text[:10]])), "ok", half_close=half_close)


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
    return Case("hostile-text", request(_json(rng.choice(choices))), "ok", half_close=False)


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


def object_form(rng: random.Random) -> Case:
    """The object body with options: valid combinations are answered 200, every bad field 400,
    and a text over the token limit with ``truncate: false`` 400."""
    texts = reference_texts(3, seed=rng.randrange(1 << 30))
    if rng.random() < 0.5:
        body: dict[str, object] = {"inputs": rng.choice([texts[0], texts, []])}
        if rng.random() < 0.7:
            body["models"] = rng.sample(KEYS, rng.randint(1, len(KEYS)))
        if rng.random() < 0.6:
            body["top_k"] = rng.choice([1, 2, 3, 45, 1000, None])
        for flag in ("raw_scores", "truncate"):
            if rng.random() < 0.4:
                body[flag] = rng.random() < 0.5
        if body.get("truncate") is False and rng.random() < 0.3:
            body["inputs"] = "a " * rng.randint(600, 5000)  # over 512 tokens: refused, not cut
            return Case("object-too-long", request(_json(body)), "reject", ((400, "POST"),))
        data = request(_json(body))
        return Case("object", data, "ok", ((200, "POST"),), half_close=rng.random() < 0.5)
    bad: list[object] = [
        {},
        {"input": "x"},
        {"inputs": "x", "extra": 1},
        {"inputs": 5},
        {"inputs": {"inputs": "x"}},
        {"inputs": ["x", None]},
        {"inputs": "x", "models": []},
        {"inputs": "x", "models": ["nope"]},
        {"inputs": "x", "models": "cardiffnlp"},
        {"inputs": "x", "models": [KEYS[0], KEYS[0]]},
        {"inputs": "x", "models": [str(i) for i in range(10_000)]},
        {"inputs": "x", "top_k": rng.choice([0, -1, 1.5, "3", True, 10**6, 2**63 - 1, [1]])},
        {"inputs": "x", "raw_scores": rng.choice(["yes", 1, None, {}])},
        {"inputs": "x", "truncate": rng.choice(["no", 0, None])},
        [{"inputs": "x"}],
        ["x", {"inputs": "y", "top_k": 1}],
        {"inputs": [{"inputs": "y"}]},
    ]
    data = request(_json(rng.choice(bad)))
    return Case("object-bad", data, "reject", ((400, "POST"),))


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
    """A valid request and garbage in one write: the request is answered, then the garbage gets
    its 400. After a request that asked to close, later bytes are not processed (RFC 9112 9.6).
    """
    start = rng.choice([i for i in range(256) if i not in (0x0D, 0x0A)])  # not a blank line
    garbage = bytes([start, *(rng.randrange(256) for _ in range(rng.randint(0, 99)))])
    garbage += b"\r\n\r\n"
    if rng.random() < 0.2:
        data = request(_json("first")) + garbage
        return Case("pipelined-after-close", data, "ok", ((200, "POST"),))
    data = request(_json("first"), close=False) + garbage
    return Case("pipelined-garbage", data, "ok", ((200, "POST"), (400, "?")))


def head_requests(rng: random.Random) -> Case:
    """HEAD has no body on any status, so the GET behind it keeps its slot (RFC 9110 9.3.2)."""
    path, status = rng.choice(
        [
            ("/health", 200),
            ("/ready", 200),
            ("/metrics", 200),
            ("/models", 200),
            ("/nope", 404),
            ("/process", 405),
        ]
    )
    data = bare("HEAD", path) + bare("GET", "/health", close=True)
    return Case("head", data, "ok", ((status, "HEAD"), (200, "GET")), rng.random() < 0.5)


def half_close(rng: random.Random) -> Case:
    """Complete requests, then EOF (nc -N, HTTP/1.0 scripts, health checks): all answered."""
    body = _json(reference_texts(1, seed=rng.randrange(1 << 30))[0])
    shapes: list[tuple[bytes, tuple[Answer, ...]]] = [
        (request(body, close=False), ((200, "POST"),)),
        (request(body), ((200, "POST"),)),
        (request(body, version="HTTP/1.0", close=False), ((200, "POST"),)),
        (bare("GET", "/health") * 3, ((200, "GET"),) * 3),
        (request(body, close=False) + bare("GET", "/nope"), ((200, "POST"), (404, "GET"))),
        (request(body, close=False) + request(b'"ab', length="9"), ((200, "POST"), (400, "POST"))),
    ]
    data, answers = rng.choice(shapes)
    return Case("half-close", data, "ok", answers)


def strict_parsing(rng: random.Random) -> Case:
    """Each decided by RFC 9112 (see http/reader.py): refused with the status it deserves, or (the
    whitespace run in the request line) deliberately accepted."""
    shapes = [
        (b"GET /health\r\n\r\n", 505),  # HTTP/0.9
        (b"GET /health HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"GET /health HTTP/1.1\r\n\r\n", 400),  # no Host
        (b"GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET /health HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
        (
            b"POST /process HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
            b"0\r\n\r\n",
            501,
        ),
        (b"POST /process HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        (b"POST /process HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (b"GET  /health  HTTP/1.1\r\nHost: x\r\n\r\n", 200),
    ]
    data, status = rng.choice(shapes)
    method = data.split(b" ", 1)[0].decode()
    return Case("strict", data, "ok" if status == 200 else "reject", ((status, method),))


def utf8_and_escapes(rng: random.Random) -> Case:
    """Invalid UTF-8 is refused (RFC 8259 8.1); an escaped lone surrogate is valid JSON and
    answered (it reaches the models as U+FFFD)."""
    body, status = rng.choice(
        [
            (b'"\xed\xa0\x80"', 400),  # an encoded surrogate
            (b'"\xc0\xaf"', 400),  # overlong
            (b'"\xf4\x90\x80\x80"', 400),  # beyond U+10FFFF
            (b'"\\udc00"', 200),
            (b'["\\ud83d", "a \\ud83d\\ude00 pair"]', 200),
        ]
    )
    return Case("utf-8", request(body), "ok" if status == 200 else "reject", ((status, "POST"),))


def deadline_header(rng: random.Random) -> Case:
    """``Request-Timeout``: a positive number of seconds, else 400; one that passes before
    compute is 504. (The accepted ones are long enough never to pass under load.)"""
    value, status = rng.choice(
        [("abc", 400), ("0", 400), ("-1", 400), ("nan", 400), ("600.5", 200), ("0.000001", 504)]
    )
    data = request(_json("on time?"), f"Request-Timeout: {value}\r\n")
    return Case("deadline", data, "ok" if status == 200 else "reject", ((status, "POST"),))


def deep_pipelining(rng: random.Random) -> Case:
    """Up to 1,000 requests in one write: all answered, in order."""
    n = rng.randint(10, 1000)
    data = bare("GET", "/health") * (n - 1) + bare("GET", "/health", close=True)
    return Case("deep-pipelining", data, "ok", ((200, "GET"),) * n, rng.random() < 0.5)


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
    (valid, 0.13),
    (object_form, 0.06),
    (hostile_text, 0.09),
    (bad_json, 0.10),
    (bad_request_line, 0.10),
    (bad_headers, 0.09),
    (bad_length, 0.09),
    (bad_chunked, 0.09),
    (pipelined_garbage, 0.05),
    (mutation, 0.12),
    (head_requests, 0.03),
    (half_close, 0.03),
    (strict_parsing, 0.03),
    (utf8_and_escapes, 0.02),
    (deadline_header, 0.02),
    (deep_pipelining, 0.003),  # each is up to 1,000 requests
]


def cases(n: int, seed: int = 0) -> Iterator[Case]:
    rng = random.Random(seed)
    generators, weights = zip(*GENERATORS, strict=True)
    for _ in range(n):
        yield rng.choices(generators, weights)[0](rng)
