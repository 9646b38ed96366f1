"""gRPC front-end: ``classifier.v1.Classifier``, the standard health service and reflection.

It runs in the HTTP server's process and event loop and makes the same call as HTTP,
``Service.classify``; a handler only decodes the request, calls the service and encodes the
results. ``ERROR_STATUS`` is the one table from service errors to gRPC statuses
(``routes.ERROR_STATUS`` is HTTP's). Every call ends in one ``Service.observe`` with its status,
``CANCELLED`` included.

Requests are parsed inside the handler rather than by grpc's deserializer hook, because grpc
answers a deserializer failure with UNKNOWN, while a text that is not UTF-8 is INVALID_ARGUMENT.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message
from grpc._cython import cygrpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from solution.proto.classifier.v1 import ERROR_METADATA_KEY
from solution.proto.classifier.v1 import classifier_pb2 as pb
from solution.server.compute.scoring import Result
from solution.server.config import Settings
from solution.server.engine.options import SINGLE, Options
from solution.server.engine.service import (
    CLIENT_ID_KEY,
    OTHER_ROUTE,
    Client,
    Observe,
    Service,
    client_key,
)
from solution.server.errors import (
    DeadlineExceeded,
    InvalidInput,
    ModelFailure,
    NotReady,
    Overloaded,
    ServiceError,
    ShuttingDown,
)

log = logging.getLogger(__name__)

SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["Classifier"].full_name

ERROR_STATUS: dict[type[ServiceError], grpc.StatusCode] = {
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ShuttingDown: grpc.StatusCode.UNAVAILABLE,
    NotReady: grpc.StatusCode.UNAVAILABLE,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    ModelFailure: grpc.StatusCode.INTERNAL,
}

# In-flight RPCs have all been answered by the engine when ``stop`` runs (``App.shutdown`` drains
# first); this only lets the last responses flush and ends open health Watch streams, which would
# otherwise hold the shutdown for the whole grace period.
STOP_GRACE_S = 1.0
# Calls grpc's core holds that no handler has taken yet are cancelled at once by ``server.stop``,
# whatever its grace (CANCELLED on SIGTERM under load). ``stop`` first lets the handlers take them:
# it waits until they have taken as many calls as the core received (channelz counts those) or
# none has reached the loop for QUIET_S: a call its client cancelled while parked never reaches a
# handler. Where channelz cannot say, only the quiet period counts, and it is shorter
# (QUIET_GUESS_S), as it was before channelz: a guess a busy machine got wrong (one call in ~100
# CANCELLED), when the loop paused that long between two calls.
QUIET_S = 0.5
QUIET_GUESS_S = 0.05
POLL_S = 0.01

_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
_SERVING = health_pb2.HealthCheckResponse.SERVING
_HEALTH_NAMES = (health.OVERALL_HEALTH, SERVICE_NAME)

# A client's deadline passes before the server's (which grpc sets on the request's arrival, so
# later by the transit time), and its cancel (RST_STREAM) says not why: a call cancelled this close
# to its deadline, or still queued then, ends as DEADLINE_EXCEEDED, its texts dropped as "deadline"
# (with no slack 1 call in 40 read CANCELLED / "client_gone" on an idle machine).
DEADLINE_SLACK_S = 0.02

M = TypeVar("M", bound=Message)
Handler = Callable[[M, grpc.aio.ServicerContext], Awaitable[Message]]
METHODS = ("Classify", "ClassifyBatch", "ListModels")


class ClassifierHandlers:
    """The RPC handlers: decode, call the service, encode."""

    def __init__(self, service: Service):
        self.service = service

    async def classify(
        self, request: pb.ClassifyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ClassifyResponse:
        options = decode_options(request.options) if request.HasField("options") else None
        (result,) = await self._submit([request.text], options, context)
        return pb.ClassifyResponse(result=encode_result(result))

    async def classify_batch(
        self, request: pb.ClassifyBatchRequest, context: grpc.aio.ServicerContext
    ) -> pb.ClassifyBatchResponse:
        options = decode_options(request.options) if request.HasField("options") else None
        results = await self._submit(list(request.texts), options, context)
        return pb.ClassifyBatchResponse(results=[encode_result(r) for r in results])

    async def list_models(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(
            models=[pb.ModelInfo(**m.to_dict()) for m in self.service.models()]  # type: ignore[arg-type]
        )

    async def _submit(
        self, texts: Sequence[str], options: Options | None, context: grpc.aio.ServicerContext
    ) -> list[Result]:
        # The client's deadline becomes the engine's: an expired request is dropped before compute.
        # A little early (DEADLINE_SLACK_S), so that the engine, not the client's cancel, ends it.
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining - DEADLINE_SLACK_S
        client_id = next(
            (v for k, v in context.invocation_metadata() or () if k == CLIENT_ID_KEY), None
        )
        client = Client(client_key(context.peer(), client_id))
        return await self.service.classify(
            texts, deadline=deadline, protocol="grpc", options=options, client=client
        )

    def rpc_handler(self) -> grpc.GenericRpcHandler:
        observe = self.service.observe
        return grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                "Classify": _unary("Classify", self.classify, pb.ClassifyRequest, observe),
                "ClassifyBatch": _unary(
                    "ClassifyBatch", self.classify_batch, pb.ClassifyBatchRequest, observe
                ),
                "ListModels": _unary("ListModels", self.list_models, pb.ListModelsRequest, observe),
            },
        )


def decode_options(message: pb.Options) -> Options:
    """The proto's Options as the service's; ranges are checked by ``Options.check``."""
    top_k: int | None = SINGLE
    if message.HasField("top_k"):
        if message.top_k < 0:
            raise InvalidInput(f"top_k: expected 0 (every label) or a count, got {message.top_k}")
        top_k = message.top_k or None
    return Options(
        models=tuple(message.models) or None,
        top_k=top_k,
        raw_scores=message.raw_scores,
        truncate=message.truncate if message.HasField("truncate") else True,
    )


def encode_result(result: Result) -> pb.Result:
    """Every model's top label in ``predictions`` (what a v1 client reads), and its ranked labels
    in ``rankings`` when the request asked for ``top_k``."""
    predictions = []
    rankings = []
    for key, answer in result.items():
        if isinstance(answer, list):
            rankings.append(
                pb.Ranking(
                    model=key, labels=[pb.LabelScore(label=p.label, score=p.score) for p in answer]
                )
            )
            if not answer:  # a threshold may leave nothing: no top label to report
                continue
            answer = answer[0]
        predictions.append(pb.Prediction(model=key, label=answer.label, score=answer.score))
    return pb.Result(predictions=predictions, rankings=rankings)


def _unary(
    method: str, handler: Handler[M], request_type: type[M], observe: Observe
) -> grpc.RpcMethodHandler:
    """A unary method: parse the raw request, run ``handler``, answer errors through the table,
    report (method, status, seconds) to ``observe`` (metrics), a call the client cancelled or
    let expire included."""

    async def call(raw: bytes, context: grpc.aio.ServicerContext) -> Message:
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            try:
                request = request_type.FromString(raw)
            except DecodeError as exc:  # for example a string field that is not UTF-8
                raise InvalidInput(f"malformed {request_type.__name__}: {exc}") from None
            return await handler(request, context)
        except asyncio.CancelledError:  # grpc cancels the handler when the call goes away
            remaining = context.time_remaining()
            expired = remaining is not None and remaining <= DEADLINE_SLACK_S
            code = grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
            raise
        except ServiceError as exc:
            code = ERROR_STATUS.get(type(exc), grpc.StatusCode.INTERNAL)
            await _abort(context, exc, code)
        except Exception:
            code = grpc.StatusCode.INTERNAL
            log.exception("unexpected error in a gRPC handler")
            await _abort(context, ServiceError("internal error"), code)
        finally:
            observe("grpc", method, code.name, time.perf_counter() - started)

    return grpc.unary_unary_rpc_method_handler(
        call, request_deserializer=None, response_serializer=_serialize
    )


def unserved_handler(observe: Observe) -> grpc.GenericRpcHandler:
    """Every method no other handler serves: UNIMPLEMENTED, as grpc itself would answer, but
    observed (route ``other``), so a call to a method this server lacks is counted too. Added
    last, it sees only what the classifier, health and reflection handlers did not take. A
    stream handler runs before any message is read, so a streaming client is answered at once."""

    async def call(requests: object, context: grpc.aio.ServicerContext) -> NoReturn:
        observe("grpc", OTHER_ROUTE, grpc.StatusCode.UNIMPLEMENTED.name, 0.0)
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        raise AssertionError("context.abort always raises")

    class Unserved(grpc.GenericRpcHandler):
        def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
            return grpc.stream_stream_rpc_method_handler(call)

    return Unserved()


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


async def _abort(
    context: grpc.aio.ServicerContext, exc: ServiceError, code: grpc.StatusCode
) -> NoReturn:
    """Send ``code`` with the error's message, marked as the service's (not grpc's) status."""
    await context.abort(
        code, str(exc), trailing_metadata=((ERROR_METADATA_KEY, type(exc).__name__),)
    )
    raise AssertionError("context.abort always raises")


def stream_limit_options(limit: int) -> list[tuple[str, int]]:
    """At most ``limit`` calls per connection at once (HTTP/2 MAX_CONCURRENT_STREAMS): a client
    sending more holds the rest itself until a stream frees, so one busy connection cannot park
    thousands of calls ahead of every other client's (a light client's call waited 11 s behind
    a 10,000-call flood on one connection, under 1 s with 256). grpc's core hands calls to the
    handlers in arrival order, whoever sent them, so a light client's call still waits behind
    every call the flood's connections hold: beside 10,000 calls over 16 connections its first
    call waited 3.3 s with 256 streams each, 0.75 s with 32. 32 is not the default: with it, 247
    of a 2,000-call burst over 8 connections ended CANCELLED (tests/server/rpc/
    test_concurrency.py), which 256 never does.

    grpc's "overload protection" (on by default) also counts streams that have ended but are not
    yet freed, and refuses new ones with RST_STREAM REFUSED_STREAM, which the client reports as
    UNAVAILABLE (measured: half of 3,000 calls at a limit of 200); grpc's own tests of this limit
    turn it off too."""
    return [
        ("grpc.max_concurrent_streams", limit),
        ("grpc.http.overload_protection", 0),
    ]


def pending_rpc_options(limit: int) -> list[tuple[str, int]]:
    """Let grpc hold ``limit`` calls that no handler has taken yet, and drop none below it.

    grpc.aio takes one call at a time from the core, between the loop's other work; a burst
    arrives faster, and the core parks the rest. Beyond ``grpc.server.max_pending_requests``
    (default 1000) it drops parked calls at random, all beyond the hard limit (default 3000),
    and the client sees a bare CANCELLED: no handler ran, so no status of ours, no metadata,
    nothing counted (2,000 concurrent calls lost 2-7 %, 10,000 lost 55 %). With both limits at
    ``limit`` every call reaches a handler, which answers it, RESOURCE_EXHAUSTED at once when
    the engine's queue is full."""
    return [
        ("grpc.server.max_pending_requests", limit),
        ("grpc.server.max_pending_requests_hard_limit", limit),
    ]


class _Arrivals(grpc.aio.ServerInterceptor):
    """How many calls reached the server's loop, and when the last did (``GrpcFrontend.stop``
    waits until the handlers have taken every call grpc's core holds)."""

    def __init__(self) -> None:
        self.count = 0
        self.last = 0.0

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        self.count += 1
        self.last = time.monotonic()
        return await continuation(details)


def calls_received(port: int) -> int | None:
    """Calls grpc's core has received on the server listening on ``port``, taken by a handler
    or not (channelz, on by default); None where channelz cannot say."""
    try:
        servers = json.loads(cygrpc.channelz_get_servers(0)).get("server", [])
        for server in servers:
            if any(ls["name"].endswith(f":{port}") for ls in server.get("listenSocket", [])):
                return int(server["data"].get("callsStarted", 0))
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    return None


class GrpcFrontend:
    """The gRPC server with its health states. Create and start it inside the running loop."""

    def __init__(self, service: Service, settings: Settings):
        service.serve_routes("grpc", METHODS)
        self.handlers = ClassifierHandlers(service)
        self.settings = settings
        self.health = health.aio.HealthServicer()
        self.server: Any = None  # grpc.aio.Server, once started
        self.port = 0  # the bound port (settings.grpc_port, or the one picked for port 0)
        self.arrivals = _Arrivals()

    async def start(self) -> None:
        """Listen, reporting NOT_SERVING until ``set_serving``."""
        s = self.settings
        options = [
            # a request message may be as large as an HTTP body (grpc answers RESOURCE_EXHAUSTED)
            ("grpc.max_receive_message_length", s.max_body_bytes),
            # grpc sets SO_REUSEPORT by default: a second server on the port would silently share
            # its traffic instead of failing to start
            ("grpc.so_reuseport", 0),
            *stream_limit_options(s.grpc_max_streams_per_connection),
            *pending_rpc_options(s.grpc_max_pending_rpcs),
        ]
        server = grpc.aio.server(options=options, interceptors=[self.arrivals])
        server.add_generic_rpc_handlers((self.handlers.rpc_handler(),))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        server.add_generic_rpc_handlers((unserved_handler(self.handlers.service.observe),))
        for name in _HEALTH_NAMES:
            await self.health.set(name, _NOT_SERVING)
        address = f"[{s.host}]:{s.grpc_port}" if ":" in s.host else f"{s.host}:{s.grpc_port}"
        try:
            self.port = server.add_insecure_port(address)
        except RuntimeError as exc:  # grpc's "Failed to bind"; OSError is what start-up reports
            raise OSError(f"gRPC cannot listen on {address}: {exc}") from None
        await server.start()
        self.server = server

    async def set_serving(self) -> None:
        """The models are warm: health says SERVING (ignored once draining has begun)."""
        for name in _HEALTH_NAMES:
            await self.health.set(name, _SERVING)

    async def drain(self) -> None:
        """Health says NOT_SERVING from now on; RPCs still arrive and the engine refuses them."""
        await self.health.enter_graceful_shutdown()

    async def stop(self, grace_s: float = STOP_GRACE_S, settle_s: float = STOP_GRACE_S) -> None:
        """Let the handlers take the calls grpc's core holds (at most ``settle_s``: the rest of
        the shutdown's grace), then stop (``grace_s``)."""
        if self.server is not None:
            began = time.monotonic()  # calls parked while the loop was busy arrive from now on
            while time.monotonic() - began < settle_s and self._parked(began):
                await asyncio.sleep(POLL_S)
            await self.server.stop(grace_s)

    def _parked(self, began: float) -> bool:
        """Whether grpc's core may still hold calls no handler has taken."""
        received = calls_received(self.port)
        if received is not None and self.arrivals.count >= received:
            return False
        quiet = QUIET_GUESS_S if received is None else QUIET_S
        return time.monotonic() - max(began, self.arrivals.last) < quiet
