"""What each HTTP route means: decode, call the service, encode. Nothing else lives here.

``ERROR_STATUS`` is the one table from service errors to HTTP statuses (gRPC's is in
``rpc.servicer``); readiness and limits are the service's (``engine/service.py``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from solution.server.engine.options import SINGLE, Options
from solution.server.engine.service import Service
from solution.server.errors import (
    DeadlineExceeded,
    InvalidInput,
    ModelFailure,
    NotReady,
    Overloaded,
    ServiceError,
    ShuttingDown,
)
from solution.server.http.protocol import Request, Response, error_response

# The HTTP API's description, committed beside this module and checked against real answers by
# tests/server/test_openapi.py.
OPENAPI_PATH = Path(__file__).with_name("openapi.json")

ERROR_STATUS: dict[type[ServiceError], int] = {
    InvalidInput: 400,
    Overloaded: 503,
    ShuttingDown: 503,
    NotReady: 503,
    DeadlineExceeded: 504,
    ModelFailure: 500,
}
RETRY_AFTER = {Overloaded, ShuttingDown, NotReady}

_OK = b'{"status":"ok"}'
_SURROGATE = re.compile("[\ud800-\udfff]")  # only lone ones are left after json.loads


def decode_texts(body: bytes) -> tuple[list[str], bool]:
    """(texts, was a single string). A JSON string or an array of strings; anything else is
    ``InvalidInput`` with a message saying what was wrong."""
    texts, single, _ = decode_request(body)
    return texts, single


OBJECT_FIELDS = ("inputs", "models", "top_k", "raw_scores", "truncate")


def decode_request(body: bytes) -> tuple[list[str], bool, Options | None]:
    """(texts, was a single string, options). The contract's bare forms (a JSON string, an array
    of strings; no options) or the object form ``{"inputs": ..., "models": [...], "top_k": k,
    "raw_scores": b, "truncate": b}``, every field but ``inputs`` optional."""
    value = _json(body)
    if isinstance(value, dict):
        return _decode_object(value)
    texts, single = _texts(value, "the body")
    return texts, single, None


def _json(body: bytes) -> Any:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # orjson refuses escaped lone surrogates ("\\ud800"), which JSON's grammar allows (a
        # JavaScript client's cut emoji); the standard parser reads them, after a strict UTF-8
        # check (it would pass encoded surrogates, which RFC 3629 forbids), and they become
        # U+FFFD, as WHATWG's USVString conversion does, so the tokenizer can read them.
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as bad:
            raise InvalidInput(
                f"body is not valid UTF-8: {bad.reason} at byte {bad.start}"
            ) from None
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            raise InvalidInput(f"body is not valid JSON: {exc}") from None
        value = _replace_surrogates(value)
    return value


def _texts(value: Any, where: str) -> tuple[list[str], bool]:
    if isinstance(value, str):
        return [value], True
    if isinstance(value, list):
        if all(isinstance(v, str) for v in value):  # the contract's form: one pass
            return value, False
        if any(isinstance(v, dict) for v in value):
            raise InvalidInput(
                f"{where}: an array holds strings only; options go in one object body "
                '{"inputs": [...], "models": [...], ...}'
            )
        raise InvalidInput(f"every element of {where}'s array must be a JSON string")
    expected = "a JSON string, an array of strings or an object with inputs"
    if where != "the body":
        expected = "a JSON string or an array of strings"
    raise InvalidInput(f"{where}: expected {expected}, got {_json_type(value)}")


def _decode_object(value: dict[str, Any]) -> tuple[list[str], bool, Options]:
    unknown = [k for k in value if k not in OBJECT_FIELDS]
    if unknown:
        raise InvalidInput(
            f"unknown field {unknown[0]!r}; an object body takes {', '.join(OBJECT_FIELDS)}"
        )
    if "inputs" not in value:
        raise InvalidInput('an object body needs "inputs": a string or an array of strings')
    texts, single = _texts(value["inputs"], "inputs")
    models = value.get("models")
    if models is not None and not (
        isinstance(models, list) and all(isinstance(m, str) for m in models)
    ):
        raise InvalidInput(f"models: expected an array of model names, got {_json_type(models)}")
    top_k: Any = value.get("top_k", SINGLE)  # absent: one prediction; null: every label
    if isinstance(top_k, float) and top_k.is_integer():
        top_k = int(top_k)  # JSON Schema's integer (openapi.json) holds 3.0, and clients send it
    if (
        "top_k" in value
        and top_k is not None
        and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1)
    ):
        raise InvalidInput(
            f"top_k: expected a count from 1 up, or null for every label, got {top_k!r}"
        )
    flags = {}
    for name, default in (("raw_scores", False), ("truncate", True)):
        flag = value.get(name, default)
        if not isinstance(flag, bool):
            raise InvalidInput(f"{name}: expected true or false, got {_json_type(flag)}")
        flags[name] = flag
    options = Options(
        models=None if models is None else tuple(models),
        top_k=top_k,
        raw_scores=flags["raw_scores"],
        truncate=flags["truncate"],
    )
    return texts, single, options


def _json_type(value: Any) -> str:
    names = {str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    names.update({list: "an array", dict: "an object", type(None): "null"})
    return names.get(type(value), type(value).__name__)


def _replace_surrogates(value: object) -> object:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_replace_surrogates(v) for v in value]
    if isinstance(value, dict):  # the object form's "inputs" (and "models")
        return {k: _replace_surrogates(v) for k, v in value.items()}
    return value


class Routes:
    """The HTTP handler: a table of path -> method -> coroutine."""

    def __init__(self, service: Service, metrics: Callable[[], bytes] | None = None):
        self.service = service
        self.metrics = metrics
        self.table: dict[str, dict[str, Callable[[Request], Awaitable[Response]]]] = {
            "/process": {"POST": self.process},
            "/health": {"GET": self.health},
            "/ready": {"GET": self.ready},
            "/metrics": {"GET": self.render_metrics},
            "/models": {"GET": self.list_models},
            "/openapi.json": {"GET": self.openapi},
        }
        self._openapi: bytes | None = None
        service.serve_routes("http", self.table)

    async def __call__(self, request: Request) -> Response:
        methods = self.table.get(request.path)
        if methods is None:
            return error_response(404, f"no route {request.path!r}; POST /process classifies")
        handler = methods.get(request.method)
        if handler is None and request.method == "HEAD":
            handler = methods.get("GET")  # the HTTP layer sends the answer without its body
        if handler is None:
            allow = ", ".join([*methods, "HEAD"] if "GET" in methods else methods).encode()
            return error_response(
                405, f"{request.method} not allowed on {request.path}", [(b"allow", allow)]
            )
        try:
            return await handler(request)
        except ServiceError as exc:
            return service_error_response(exc)

    async def process(self, request: Request) -> Response:
        texts, single, options = decode_request(request.body)
        results = await self.service.classify(
            texts,
            deadline=request.deadline,
            protocol="http",
            options=options,
            client=request.client,
        )
        return Response(200, orjson.dumps(results[0] if single else results))

    async def list_models(self, request: Request) -> Response:
        models = [m.to_dict() for m in self.service.models()]
        return Response(200, orjson.dumps({"models": models}))

    async def openapi(self, request: Request) -> Response:
        if self._openapi is None:
            self._openapi = OPENAPI_PATH.read_bytes()
        return Response(200, self._openapi)

    async def health(self, request: Request) -> Response:
        return Response(200, _OK)

    async def ready(self, request: Request) -> Response:
        if self.service.ready:
            return Response(200, _OK)
        reason = self.service.not_ready_reason()
        return error_response(503, f"not ready: {reason}", [(b"retry-after", b"1")])

    async def render_metrics(self, request: Request) -> Response:
        if self.metrics is None:
            return error_response(404, "metrics are not enabled")
        return Response(200, self.metrics(), b"text/plain; version=0.0.4; charset=utf-8")


def service_error_response(exc: ServiceError) -> Response:
    status = ERROR_STATUS.get(type(exc), 500)
    headers = [(b"retry-after", b"1")] if type(exc) in RETRY_AFTER else []
    return error_response(status, str(exc), headers)
