"""The minimal ASGI app the uvicorn peers share: ``POST /process`` with a JSON string, ``GET
/ready``; no framework, so the peers pay for uvicorn and their own design, nothing else."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

Classify = Callable[[str], Awaitable[Any]]  # text -> the five-key result (dicts)
ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def make_app(classify: Classify) -> ASGIApp:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path in ("/ready", "/health") and method == "GET":
            await _respond(send, 200, b'{"status":"ok"}')
            return
        if path != "/process" or method != "POST":
            await _respond(send, 404, b'{"error":"not found"}')
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        try:
            text = orjson.loads(body)
        except orjson.JSONDecodeError:
            await _respond(send, 400, b'{"error":"body is not JSON"}')
            return
        if not isinstance(text, str):
            await _respond(send, 400, b'{"error":"expected a JSON string"}')
            return
        await _respond(send, 200, orjson.dumps(await classify(text)))

    return app


async def _respond(send: Any, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def serve(app: ASGIApp, host: str, port: int) -> None:
    """uvicorn as it is run in production: uvloop, httptools, no access log."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )
    uvicorn.Server(config).run()
