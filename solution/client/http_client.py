"""HTTP client of ``POST /process``, sync (``HttpClient``) and asyncio (``AsyncHttpClient``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import httpx
import orjson

from .results import ClientError, Refused, Result, TimedOut, Unreachable, from_json

DEFAULT_TARGET = "127.0.0.1:8000"
_HEADERS = {"content-type": "application/json"}


def _url(target: str) -> str:
    base = target if "://" in target else f"http://{target}"
    return base.rstrip("/") + "/process"


def _body(value: str | list[str]) -> bytes:
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        # orjson refuses lone surrogates (a str from surrogateescape, for example); the standard
        # encoder escapes them, and the server replaces them like any other client's.
        return json.dumps(value).encode()


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
    """``classify(text)`` and ``classify_batch(texts)`` over one keep-alive connection pool."""

    def __init__(self, target: str = DEFAULT_TARGET, timeout: float | None = 10.0):
        self.url = _url(target)
        self._http = httpx.Client(timeout=timeout, headers=_HEADERS)

    def classify(self, text: str) -> Result:
        return from_json(self._post(_body(text)))

    def classify_batch(self, texts: Sequence[str]) -> list[Result]:
        return [from_json(r) for r in self._post(_body(list(texts)))]

    def _post(self, body: bytes) -> Any:
        try:
            response = self._http.post(self.url, content=body)
        except httpx.HTTPError as exc:
            raise _error(exc, self.url) from None
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
        self.url = _url(target)
        self._http = httpx.AsyncClient(timeout=timeout, headers=_HEADERS)

    async def classify(self, text: str) -> Result:
        return from_json(await self._post(_body(text)))

    async def classify_batch(self, texts: Sequence[str]) -> list[Result]:
        return [from_json(r) for r in await self._post(_body(list(texts)))]

    async def _post(self, body: bytes) -> Any:
        try:
            response = await self._http.post(self.url, content=body)
        except httpx.HTTPError as exc:
            raise _error(exc, self.url) from None
        return _decode(response)

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncHttpClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
