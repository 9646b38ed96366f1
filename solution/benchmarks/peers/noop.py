"""The HTTP layer alone: ``python -m solution.benchmarks.peers.noop ours|uvicorn --port P``.

Both servers do the same JSON work around a classifier that does nothing: decode the body into
texts, encode a five-key result. ``ours`` is ``server.http.protocol`` with the service's own
decoder (``routes.decode_texts``) and result type (``engine.Prediction``); ``uvicorn`` runs the
minimal ASGI app of ``peers.asgi`` on uvicorn with httptools and uvloop.
"""

from __future__ import annotations

import argparse
import asyncio

import orjson

KEYS = ("cardiffnlp", "ivanlau", "svalabs", "EIStakovskii", "jy46604790")


def canned() -> dict[str, dict[str, object]]:
    return {key: {"score": 0.5, "label": "LABEL_0"} for key in KEYS}


def run_ours(host: str, port: int) -> None:
    import uvloop

    from solution.server.compute.scoring import Prediction
    from solution.server.config import Settings
    from solution.server.http import protocol as http
    from solution.server.http.routes import decode_texts

    settings = Settings(host=host, http_port=port)
    result = {key: Prediction(0.5, "LABEL_0") for key in KEYS}

    async def handler(request: http.Request) -> http.Response:
        if request.path == "/ready":
            return http.Response(200, b'{"status":"ok"}')
        texts, single = decode_texts(request.body)
        answers = [result for _ in texts]
        return http.Response(200, orjson.dumps(answers[0] if single else answers))

    async def main() -> None:
        state = http.ServerState(settings, handler)
        server = await http.serve(state, host, port)
        async with server:
            await asyncio.Event().wait()

    uvloop.run(main())


def run_uvicorn(host: str, port: int) -> None:
    from .asgi import make_app, serve

    async def classify(text: str) -> dict[str, dict[str, object]]:
        return canned()

    serve(make_app(classify), host, port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("server", choices=("ours", "uvicorn"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    (run_ours if args.server == "ours" else run_uvicorn)(args.host, args.port)


if __name__ == "__main__":
    main()
