"""What each HTTP route means: decode, call the service, encode. Nothing else lives here.

``ERROR_STATUS`` is the one table from service errors to HTTP statuses (gRPC's is in
``grpc_service``); readiness and limits are the service's (``service.py``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable

import orjson

from .errors import (
    DeadlineExceeded,
    InvalidInput,
    ModelFailure,
    NotReady,
    Overloaded,
    ServiceError,
    ShuttingDown,
)
from .http import Request, Response, error_response
from .service import Service

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
    if isinstance(value, str):
        return [value], True
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise InvalidInput("every element of the array must be a JSON string")
        return value, False
    raise InvalidInput(f"expected a JSON string or an array of strings, got {type(value).__name__}")


def _replace_surrogates(value: object) -> object:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_replace_surrogates(v) for v in value]
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
        }
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
        texts, single = decode_texts(request.body)
        results = await self.service.classify(texts, deadline=request.deadline, protocol="http")
        return Response(200, orjson.dumps(results[0] if single else results))

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
