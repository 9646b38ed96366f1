"""What each HTTP route means: decode, call the engine, encode. Nothing else lives here.

``ERROR_STATUS`` is the one table from engine errors to HTTP statuses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable

import orjson

from .engine import Engine
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


def decode_texts(body: bytes, max_texts: int) -> tuple[list[str], bool]:
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
        if len(value) > max_texts:
            raise InvalidInput(f"at most {max_texts} texts per request, got {len(value)}")
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

    def __init__(
        self, engine: Engine | None, max_texts: int, metrics: Callable[[], bytes] | None = None
    ):
        self.engine = engine  # None while the models load: /health answers, the rest 503
        self.max_texts = max_texts
        self.metrics = metrics
        self.table: dict[str, dict[str, Callable[[Request], Awaitable[Response]]]] = {
            "/process": {"POST": self.process},
            "/health": {"GET": self.health},
            "/ready": {"GET": self.ready},
            "/metrics": {"GET": self.render_metrics},
        }

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
        texts, single = decode_texts(request.body, self.max_texts)
        if self.engine is None:
            raise NotReady("models are still loading")
        results = await self.engine.submit(texts, deadline=request.deadline, origin="http")
        return Response(200, orjson.dumps(results[0] if single else results))

    async def health(self, request: Request) -> Response:
        return Response(200, _OK)

    async def ready(self, request: Request) -> Response:
        if self.engine is not None and self.engine.ready:
            return Response(200, _OK)
        draining = self.engine is not None and not self.engine.accepting
        reason = "shutting down" if draining else "models loading"
        return error_response(503, f"not ready: {reason}", [(b"retry-after", b"1")])

    async def render_metrics(self, request: Request) -> Response:
        if self.metrics is None:
            return error_response(404, "metrics are not enabled")
        return Response(200, self.metrics(), b"text/plain; version=0.0.4; charset=utf-8")


def service_error_response(exc: ServiceError) -> Response:
    status = ERROR_STATUS.get(type(exc), 500)
    headers = [(b"retry-after", b"1")] if type(exc) in RETRY_AFTER else []
    return error_response(status, str(exc), headers)
