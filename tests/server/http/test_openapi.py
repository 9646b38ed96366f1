"""``server/http/openapi.json`` against the server: the document is valid OpenAPI 3.1, names
exactly the routes ``Routes.table`` serves, and every (path, method, status) it lists is produced
here by real bytes through ``HttpProtocol`` and ``Routes`` on the tiny stand-ins, then checked:
status, content type, documented headers, and the body against the document's schema (JSON
Schema 2020-12). Service refusals that need a loaded or failing engine (overloaded, deadline,
model failure) come from a fake engine that raises them; the mapping itself is test_routes'.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from solution.server import errors
from solution.server.config import Settings
from solution.server.engine.service import Service
from solution.server.http import protocol as http
from solution.server.http.routes import OPENAPI_PATH, Routes
from solution.server.metrics import Metrics
from tests.conftest import bound_service
from tests.server.http.doubles import Answer, MockLoop, MockTransport, parse_responses

DOC: dict[str, Any] = json.loads(OPENAPI_PATH.read_bytes())
BASE = "urn:openapi"
REGISTRY: Registry = Registry().with_resource(
    BASE, Resource.from_contents(DOC, default_specification=DRAFT202012)
)
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
LIMITS = dict(max_body_bytes=10_000, max_header_bytes=2000, header_timeout_s=2.0, max_connections=2)


# ---- reading the document --------------------------------------------------------------------


def pointer(*parts: str) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def resolve(obj: dict[str, Any], where: str) -> tuple[dict[str, Any], str]:
    """Follow a local ``$ref`` (components): the object and its JSON pointer."""
    while "$ref" in obj:
        where = obj["$ref"].removeprefix("#")
        obj = DOC
        for part in where.split("/")[1:]:
            obj = obj[part.replace("~1", "/").replace("~0", "~")]
    return obj, where


def component(name: str) -> tuple[dict[str, Any], str]:
    return resolve(DOC["components"]["responses"][name], pointer("components", "responses", name))


def validator(where: str) -> Draft202012Validator:
    """The schema at ``where`` (a pointer into the document), its ``$ref``s resolved in it."""
    return Draft202012Validator({"$ref": BASE + "#" + quote(where)}, registry=REGISTRY)


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in DOC["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method.upper(), item[method]


def documented(path: str, method: str, status: int) -> tuple[dict[str, Any], str]:
    """The response the document promises: the operation's, or for paths and methods it does
    not list the components it names for them (404, 405)."""
    item = DOC["paths"].get(path)
    operation = None if item is None else item.get(method.lower())
    if operation is None:
        name = "NotFound" if item is None else "MethodNotAllowed"
        return component(name)
    responses = operation["responses"]
    assert str(status) in responses, f"{method} {path} answered {status}, undocumented"
    where = pointer("paths", path, method.lower(), "responses", str(status))
    return resolve(responses[str(status)], where)


def check(path: str, method: str, answer: Answer, before_request: bool = False) -> None:
    """The answer is what the document says it is, header by header and byte by byte.
    ``before_request``: the connection limit's refusal, written before any request was read
    (so with its body, whatever the method was going to be)."""
    if before_request:
        response, where = component("TooManyConnections")
    else:
        response, where = documented(path, method, answer.status)
    for name, header in response.get("headers", {}).items():
        header, header_at = resolve(header, where + pointer("headers", name))
        value = answer.headers.get(name.lower())
        assert value is not None, f"{answer.status} without its documented {name} header"
        validator(header_at + "/schema").validate(value)
    content = response.get("content")
    if content is None:  # (HEAD) only the headers, Content-Length what GET's body would be
        assert answer.body == b""
        return
    media = answer.headers["content-type"]
    assert media in content, f"{answer.status} answered {media}, documented {list(content)}"
    body = orjson.loads(answer.body) if media == "application/json" else answer.body.decode()
    validator(where + pointer("content", media, "schema")).validate(body)


# ---- the document itself ---------------------------------------------------------------------


def test_the_document_is_valid_openapi_3_1():
    OpenAPIV31SpecValidator(DOC).validate()
    assert DOC["openapi"] == "3.1.0"


def test_every_route_of_the_table_is_documented_and_nothing_else():
    table = Routes(Service(1)).table
    served = {(p, m) for p, methods in table.items() for m in methods}
    served |= {(p, "HEAD") for p, methods in table.items()}  # GET's twin, or 405 on /process
    assert {(p, m) for p, m, _ in operations()} == served


def test_every_operation_lists_the_http_layers_refusals():
    layer = {"400", "408", "413", "431", "500", "501", "503", "505"}
    for path, method, operation in operations():
        assert layer <= set(operation["responses"]), (method, path)


def examples() -> Iterator[tuple[str, object]]:
    """(pointer to a schema, one example of it): the schemas' ``examples`` and the media types'
    ``example`` / ``examples``, wherever they sit in the document."""

    def walk(node: object, where: str) -> Iterator[tuple[str, object]]:
        if isinstance(node, list):
            for i, value in enumerate(node):
                yield from walk(value, where + pointer(str(i)))
        if not isinstance(node, dict):
            return
        shown = node.get("examples")
        if isinstance(shown, list):  # a schema's examples
            yield from ((where, e) for e in shown)
        if "schema" in node:  # a media type, a header or a parameter
            if "example" in node:
                yield where + "/schema", node["example"]
            if isinstance(shown, dict):  # named Example objects
                yield from ((where + "/schema", e["value"]) for e in shown.values())
        for key, value in node.items():
            if key not in ("example", "examples"):  # data, not the document's structure
                yield from walk(value, where + pointer(key))

    return walk(DOC, "")


def test_every_example_in_the_document_matches_its_schema():
    found = list(examples())
    assert len(found) > 30
    for where, example in found:
        validator(where).validate(example)


# ---- real answers ----------------------------------------------------------------------------


class FakeEngine:
    """Ready, and every ``submit`` raises ``error``: the refusals a real engine gives only under
    load, at a deadline or on a broken model."""

    def __init__(self, keys: list[str], error: Exception):
        self.keys = keys
        self.ready = True
        self.error = error

    async def submit(self, texts: object, **kwargs: object) -> list[object]:
        raise self.error


@dataclass(frozen=True)
class Case:
    path: str
    method: str
    status: int
    raw: bytes  # the request's bytes
    service: str = "real"  # "real", "unbound" (loading) or an error class of errors.py
    action: str = ""  # "timeout": advance past header_timeout_s; "full": connections at the limit
    # "crash": the handler raises (the HTTP layer's 500)

    def __str__(self) -> str:
        return f"{self.method} {self.path} {self.status} {self.raw[:50]!r} {self.service}"


def request(method: str, path: str, body: bytes = b"", extra: bytes = b"") -> bytes:
    head = b"%s %s HTTP/1.1\r\nHost: t\r\n" % (method.encode(), path.encode())
    if method == "POST":
        head += b"Content-Length: %d\r\n" % len(body)
    return head + extra + b"\r\n" + body


LONG = b"word " * 600


def process(body: bytes, status: int = 200, service: str = "real", extra: bytes = b"") -> Case:
    return Case("/process", "POST", status, request("POST", "/process", body, extra), service)


ROUTE_CASES = [
    process(b'"This is how true happiness looks like \xf0\x9f\x91\x8d"'),
    process(b'["hello", "", "\\ud83d"]'),
    process(b"[]"),
    process(b'{"inputs": "Ce film est magnifique"}'),
    process(b'{"inputs": ["a", "b"], "models": ["ivanlau", "jy46604790"], "top_k": 3}'),
    process(b'{"inputs": "a", "top_k": null, "raw_scores": true, "truncate": false}'),
    process(b'{"inputs": "a", "models": null, "top_k": 1000, "raw_scores": false}'),
    process(b'{"inputs": "' + LONG + b'"}'),  # truncated
    process(b'"unterminated', 400),
    process(b"\xff", 400),
    process(b'{"text": "x"}', 400),
    process(b'["a", {"inputs": "b"}]', 400),
    process(b'{"inputs": "x", "models": ["nope"]}', 400),
    process(b'{"inputs": "x", "top_k": 0}', 400),
    process(b'{"inputs": "x", "truncate": "no"}', 400),
    process(b'{"inputs": "' + LONG + b'", "truncate": false}', 400),
    process(b'"x"', 400, extra=b"Request-Timeout: soon\r\n"),
    process(b'"x"', 500, "ModelFailure"),
    process(b'"x"', 503, "Overloaded"),
    process(b'"x"', 503, "ShuttingDown"),
    process(b'"x"', 503, "unbound"),
    process(b'"x"', 504, "DeadlineExceeded"),
    Case("/process", "HEAD", 405, request("HEAD", "/process")),
    *[
        Case(path, method, 200, request(method, path))
        for path in ("/models", "/health", "/ready", "/metrics", "/openapi.json")
        for method in ("GET", "HEAD")
    ],
    *[
        Case(path, method, 503, request(method, path), "unbound")
        for path in ("/models", "/ready")
        for method in ("GET", "HEAD")
    ],
    Case("/health", "GET", 200, request("GET", "/health"), "unbound"),  # alive while loading
    # not in the document's paths: its NotFound and MethodNotAllowed components
    Case("/nope", "GET", 404, request("GET", "/nope")),
    Case("/process", "GET", 405, request("GET", "/process")),
    Case("/health", "POST", 405, request("POST", "/health")),
]


def layer_cases(path: str, method: str) -> list[Case]:
    """The HTTP layer's refusals of a request for ``path``: what it does before any route."""
    line = b"%s %s HTTP/1.1\r\n" % (method.encode(), path.encode())
    return [
        Case(path, method, 400, line + b"\r\n"),  # no Host
        Case(path, method, 408, line + b"Host: t\r\n", action="timeout"),
        Case(
            path,
            method,
            413,
            line + b"Host: t\r\nContent-Length: %d\r\n\r\n" % (LIMITS["max_body_bytes"] + 1),
        ),
        Case(path, method, 431, line + b"Host: t\r\nX-Big: " + b"b" * 2000 + b"\r\n\r\n"),
        Case(path, method, 500, request(method, path), action="crash"),
        Case(
            path,
            method,
            501,
            line + b"Host: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        ),
        Case(path, method, 503, request(method, path), action="full"),
        Case(path, method, 505, line.replace(b"HTTP/1.1", b"HTTP/2.0") + b"Host: t\r\n\r\n"),
    ]


CASES = ROUTE_CASES + [c for p, m, _ in operations() for c in layer_cases(p, m)]


def test_every_documented_status_is_produced_by_a_case():
    listed = {(p, m, int(s)) for p, m, op in operations() for s in op["responses"]}
    documented_ops = {(p, m) for p, m, _ in operations()}
    produced = {(c.path, c.method, c.status) for c in CASES if (c.path, c.method) in documented_ops}
    assert listed == produced


async def crash(request: http.Request) -> http.Response:
    raise RuntimeError("a handler bug")


def handler_for(case: Case, engine: Any) -> http.Handler:
    if case.action == "crash":  # whatever the route, the HTTP layer answers a raising handler
        return crash
    if case.service == "real":
        service = bound_service(engine)
    elif case.service == "unbound":
        service = Service(256)
    else:
        service = bound_service(FakeEngine(engine.keys, getattr(errors, case.service)("why")))
    return Routes(service, Metrics().render)


async def answer(case: Case, engine: Any, settings: Settings) -> Answer:
    """Send the case's bytes to a protocol on a mock transport; the one answer written."""
    loop = MockLoop()
    state = http.ServerState(settings.replace(**LIMITS), handler_for(case, engine))
    for _ in range(LIMITS["max_connections"] + 1 if case.action == "full" else 1):
        protocol = http.HttpProtocol(state, loop=loop, clock=loop.time)  # type: ignore[arg-type]
        transport = MockTransport()
        transport.protocol = protocol
        protocol.connection_made(transport)  # type: ignore[arg-type]
    if case.action != "full":  # the refused connection answers before any request is read
        protocol.data_received(case.raw)
    if case.action == "timeout":
        loop.advance(LIMITS["header_timeout_s"])
    await loop.settle()
    wire = parse_responses(transport.take())  # a HEAD answer: the body is simply not there
    assert wire.rest == b"", "bytes beyond the answer's Content-Length"
    (reply,) = wire.answers
    return reply


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_the_answer_is_what_the_document_says(case, engine, settings):
    reply = await answer(case, engine, settings)
    assert reply.status == case.status, reply.body
    check(case.path, case.method, reply, before_request=case.action == "full")


async def test_the_served_document_is_the_committed_file(engine, settings):
    reply = await answer(
        Case("/openapi.json", "GET", 200, request("GET", "/openapi.json")), engine, settings
    )
    assert reply.body == OPENAPI_PATH.read_bytes()


# ---- where a schema-driven tester found the document and the server disagreeing -----------------


def test_the_request_timeout_pattern_takes_exactly_what_the_reader_takes():
    """The pattern allowed 0, which the server refuses (README: a positive number of seconds)."""
    from solution.server.http.reader import RequestError, RequestReader

    parameters = DOC["paths"]["/process"]["post"]["parameters"]
    (parameter,) = [p for p in parameters if p["name"] == "Request-Timeout"]
    schema = Draft202012Validator(parameter["schema"])
    for value in ["0", "0.0", "000.000000000", "2.5", "0.5", "000001", "0.000000001", "999999"]:
        reader = RequestReader(Settings())
        head = f"GET /health HTTP/1.1\r\nHost: t\r\nRequest-Timeout: {value}\r\n\r\n"
        (event,) = reader.feed(head.encode(), 0.0)
        assert schema.is_valid(value) is not isinstance(event, RequestError), value


def test_a_whole_number_top_k_sent_as_a_json_float_is_that_count():
    """JSON Schema's integer holds 1.0, and a JSON client may well send it."""
    from solution.server.http.routes import decode_request

    for sent, count in ((b"1.0", 1), (b"3.0", 3), (b"1e1", 10)):
        _, _, options = decode_request(b'{"inputs": "x", "top_k": ' + sent + b"}")
        assert options is not None and options.top_k == count and type(options.top_k) is int
    assert validator("/components/schemas/ProcessObject/properties/top_k").is_valid(1.0)
