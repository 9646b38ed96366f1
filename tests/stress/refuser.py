"""The platform's bound on refusals: a grpc.aio server that refuses every call at once.

It has the service's grpc options (stream limit, pending calls) and answers every unary call
``RESOURCE_EXHAUSTED`` with ``classifier-error: Overloaded``, doing nothing else: what a refusal
costs in grpc.aio itself. ``floods.fairness`` floods it like the service, so that ``make stress``
prints the service's refusal latency beside the lowest this machine allows
(``python -m tests.stress.refuser PORT`` serves it).
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import grpc
import uvloop

from solution.proto.classifier.v1 import ERROR_METADATA_KEY
from solution.server.config import Settings
from solution.server.rpc.servicer import pending_rpc_options, stream_limit_options
from tests.live_server import free_port


async def refuse(request: bytes, context: grpc.aio.ServicerContext) -> Any:
    await context.abort(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "queue full; retry later",
        trailing_metadata=((ERROR_METADATA_KEY, "Overloaded"),),
    )


class Refuses(grpc.GenericRpcHandler):
    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(refuse)


async def serve(port: int) -> None:
    s = Settings()
    options = [
        *stream_limit_options(s.grpc_max_streams_per_connection),
        *pending_rpc_options(s.grpc_max_pending_rpcs),
    ]
    server = grpc.aio.server(options=options)
    server.add_generic_rpc_handlers((Refuses(),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


class Refuser:
    """The refuser in a process of its own, on a free port."""

    def __enter__(self) -> Refuser:
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.stress.refuser", str(self.port)])
        with grpc.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(10)


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1])))
