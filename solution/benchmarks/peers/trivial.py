"""A server that does nearly nothing, to measure the load generator's own ceiling:
``python -m solution.benchmarks.peers.trivial --port P``.

It parses no HTTP: it answers one canned response per end of headers (``\\r\\n\\r\\n``) it sees.
That is enough for the benchmark client, whose bodies are JSON (control characters escaped, so
never a raw CRLF) and which has one request in flight per connection.
"""

from __future__ import annotations

import argparse
import asyncio

import uvloop

BODY = b'{"status":"ok"}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)


class Trivial(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        chunk = self.tail + data
        n = chunk.count(b"\r\n\r\n")
        self.tail = chunk[-3:]  # a terminator split across reads is still seen once
        if n and self.transport is not None:
            self.transport.write(RESPONSE * n)


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Trivial, host, port, backlog=4096, reuse_address=True)
    async with server:
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
