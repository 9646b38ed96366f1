"""HTTP client of ``POST /process``, sync (``HttpClient``) and asyncio (``AsyncHttpClient``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Unpack

import httpx
import orjson

from .options import OptionFields, Options
from .results import ClientError, ModelInfo, Refused, Result, TimedOut, Unreachable, from_json

DEFAULT_TARGET = "127.0.0.1:8000"
_HEADERS = {"content-type": "application/json"}


def _base(target: str) -> str:
    return (target if "://" in target else f"http://{target}").rstrip("/")


def request_body(inputs: str | list[str], options: Options) -> bytes:
    """The ``/process`` body: the contract's bare string or array when no option is asked (the
    same bytes as before options existed), else the object form with only the fields asked."""
    if options.is_default:
        return _dumps(inputs)
    body: dict[str, Any] = {"inputs": inputs}
    if options.models is not None:
        body["models"] = list(options.models)
    if options.ranked:
        body["top_k"] = options.top_k  # None: every label (JSON null)
    if options.raw_scores:
        body["raw_scores"] = True
    if not options.truncate:
        body["truncate"] = False
    return _dumps(body)


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        # orjson refuses lone surrogates (a str from surrogateescape, for example); the standard
        # encoder escapes them, and the server replaces them like any other client's.
        return json.dumps(value).encode()


def _models(value: Any) -> list[ModelInfo]:
    return [ModelInfo.from_fields(m) for m in value["models"]]


def _decode(response: httpx.Response) -> Any:
    if response.status_code == 200:
        return orjson.loads(response.content)
    try:
        message = str(orjson.loads(response.content)["error"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        message = response.text.strip() or response.reason_phrase
    raise Refused(response.status_code, message)


def _error(exc: httpx.HTTPError, url: str) -> ClientError:
    if isinstance(exc, httpx.ConnectTimeout):
        return Unreachable(f"cannot reach the HTTP server at {url}: connect timed out")
    if isinstance(exc, httpx.TimeoutException):
        return TimedOut(f"no answer from {url} within the timeout")
    return Unreachable(f"cannot reach the HTTP server at {url}: {exc or type(exc).__name__}")


class HttpClient:
    """``classify(text)``, ``classify_batch(texts)`` (both take the per-request options as
    keywords: ``models``, ``top_k``, ``raw_scores``, ``truncate``) and ``list_models()`` over one
    keep-alive connection pool."""

    def __init__(self, target: str = DEFAULT_TARGET, timeout: float | None = 10.0):
        base = _base(target)
        self.url = base + "/process"
        self.models_url = base + "/models"
        self._http = httpx.Client(timeout=timeout, headers=_HEADERS)

    def classify(self, text: str, **options: Unpack[OptionFields]) -> Result:
        return from_json(self._send("POST", self.url, request_body(text, Options(**options))))

    def classify_batch(self, texts: Sequence[str], **options: Unpack[OptionFields]) -> list[Result]:
        body = request_body(list(texts), Options(**options))
        return [from_json(r) for r in self._send("POST", self.url, body)]

    def list_models(self) -> list[ModelInfo]:
        """The served models, in response order."""
        return _models(self._send("GET", self.models_url))

    def _send(self, method: str, url: str, body: bytes | None = None) -> Any:
        try:
            response = self._http.request(method, url, content=body)
        except httpx.HTTPError as exc:
            raise _error(exc, url) from None
        return _decode(response)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncHttpClient:
    """The asyncio twin of ``HttpClient``."""

    def __init__(self, target: str = DEFAULT_TARGET, timeout: float | None = 10.0):
        base = _base(target)
        self.url = base + "/process"
        self.models_url = base + "/models"
        self._http = httpx.AsyncClient(timeout=timeout, headers=_HEADERS)

    async def classify(self, text: str, **options: Unpack[OptionFields]) -> Result:
        return from_json(await self._send("POST", self.url, request_body(text, Options(**options))))

    async def classify_batch(
        self, texts: Sequence[str], **options: Unpack[OptionFields]
    ) -> list[Result]:
        body = request_body(list(texts), Options(**options))
        return [from_json(r) for r in await self._send("POST", self.url, body)]

    async def list_models(self) -> list[ModelInfo]:
        """The served models, in response order."""
        return _models(await self._send("GET", self.models_url))

    async def _send(self, method: str, url: str, body: bytes | None = None) -> Any:
        try:
            response = await self._http.request(method, url, content=body)
        except httpx.HTTPError as exc:
            raise _error(exc, url) from None
        return _decode(response)

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncHttpClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
