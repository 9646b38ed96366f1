"""gRPC client of ``classifier.v1.Classifier``, sync (``GrpcClient``) and asyncio
(``AsyncGrpcClient``). Both return the same ``Result`` objects as the HTTP clients."""

from __future__ import annotations

import re
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import grpc

from solution.proto.classifier.v1 import ERROR_METADATA_KEY
from solution.proto.classifier.v1 import classifier_pb2 as pb
from solution.proto.classifier.v1 import classifier_pb2_grpc as pb_grpc

from .results import ClientError, Prediction, Refused, Result, TimedOut, Unreachable

DEFAULT_TARGET = "127.0.0.1:50051"
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def wire_text(text: str) -> str:
    """A text protobuf can carry (UTF-8): surrogate pairs joined, lone surrogates made U+FFFD.

    Python strings may hold surrogates (JSON escapes, surrogateescape'd bytes); this is what the
    HTTP server does with the same text, so both clients get the same answer for it.
    """
    try:
        text.encode()
        return text
    except UnicodeEncodeError:
        joined = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
        return _LONE_SURROGATE.sub("\ufffd", joined)


def _result(message: pb.Result) -> Result:
    return {p.model: Prediction(p.score, p.label) for p in message.predictions}


def _error(exc: grpc.RpcError, target: str) -> ClientError:
    call: Any = exc  # a grpc.Call as well: code(), details(), trailing_metadata()
    code, details = call.code(), call.details() or ""
    # Without the service's marker, UNAVAILABLE means no server there. DEADLINE_EXCEEDED is
    # always the client's own deadline, whichever side noticed first (the service answers it,
    # marked, the moment the deadline passes while the texts still wait).
    from_service = any(key == ERROR_METADATA_KEY for key, _ in call.trailing_metadata() or ())
    if not from_service and code == grpc.StatusCode.UNAVAILABLE:
        return Unreachable(f"cannot reach the gRPC server at {target}: {details}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return TimedOut(f"no answer from {target} within the timeout")
    return Refused(code.name, details)


class GrpcClient:
    """``classify(text)`` and ``classify_batch(texts)`` over one channel."""

    def __init__(self, target: str = DEFAULT_TARGET, timeout: float | None = 10.0):
        self.target = target
        self.timeout = timeout
        self._channel = grpc.insecure_channel(target)
        self._stub = pb_grpc.ClassifierStub(self._channel)

    def classify(self, text: str) -> Result:
        request = pb.ClassifyRequest(text=wire_text(text))
        try:
            response = self._stub.Classify(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise _error(exc, self.target) from None
        return _result(response.result)

    def classify_batch(self, texts: Sequence[str]) -> list[Result]:
        request = pb.ClassifyBatchRequest(texts=[wire_text(t) for t in texts])
        try:
            response = self._stub.ClassifyBatch(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise _error(exc, self.target) from None
        return [_result(r) for r in response.results]

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> GrpcClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncGrpcClient:
    """The asyncio twin of ``GrpcClient``. Its channel is opened on first use, inside the
    running event loop (a grpc.aio channel belongs to the loop it was made in)."""

    def __init__(self, target: str = DEFAULT_TARGET, timeout: float | None = 10.0):
        self.target = target
        self.timeout = timeout
        self._channel: Any = None  # grpc.aio.Channel
        self._stub: Any = None

    def _open(self) -> Any:
        if self._stub is None:
            self._channel = grpc.aio.insecure_channel(self.target)
            self._stub = pb_grpc.ClassifierStub(self._channel)
        return self._stub

    async def classify(self, text: str) -> Result:
        request = pb.ClassifyRequest(text=wire_text(text))
        try:
            response = await self._open().Classify(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise _error(exc, self.target) from None
        return _result(response.result)

    async def classify_batch(self, texts: Sequence[str]) -> list[Result]:
        request = pb.ClassifyBatchRequest(texts=[wire_text(t) for t in texts])
        try:
            response = await self._open().ClassifyBatch(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise _error(exc, self.target) from None
        return [_result(r) for r in response.results]

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = self._stub = None

    async def __aenter__(self) -> AsyncGrpcClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
