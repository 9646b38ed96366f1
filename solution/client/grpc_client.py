"""gRPC client of ``classifier.v1.Classifier``, sync (``GrpcClient``) and asyncio
(``AsyncGrpcClient``). Both return the same ``Result`` objects as the HTTP clients."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import fields
from types import TracebackType
from typing import Any, Unpack

import grpc

from solution.proto.classifier.v1 import ERROR_METADATA_KEY
from solution.proto.classifier.v1 import classifier_pb2 as pb
from solution.proto.classifier.v1 import classifier_pb2_grpc as pb_grpc

from .options import SINGLE, OptionFields, Options
from .results import ClientError, ModelInfo, Prediction, Refused, Result, TimedOut, Unreachable

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


def encode_options(options: Options) -> dict[str, pb.Options]:
    """The request's ``options`` field, left unset when no option is asked (the request is then
    the same bytes as before options existed)."""
    if options.is_default:
        return {}
    models = [wire_text(m) for m in options.models or ()]
    message = pb.Options(models=models, raw_scores=options.raw_scores)
    if options.top_k is not SINGLE:
        message.top_k = options.top_k or 0  # 0: every label (HTTP's null)
    if not options.truncate:
        message.truncate = False
    return {"options": message}


def _result(message: pb.Result, options: Options) -> Result:
    """The same ``Result`` HTTP gives: with ``top_k`` each model's ranking (``rankings``),
    otherwise its top label (``predictions``)."""
    if options.ranked:
        return {r.model: [Prediction(s.score, s.label) for s in r.labels] for r in message.rankings}
    return {p.model: Prediction(p.score, p.label) for p in message.predictions}


def _models(message: pb.ListModelsResponse) -> list[ModelInfo]:
    names = [f.name for f in fields(ModelInfo)]
    return [ModelInfo.from_fields({n: getattr(m, n) for n in names}) for m in message.models]


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
    """``classify(text)``, ``classify_batch(texts)`` (both take the per-request options as
    keywords, as ``HttpClient`` does) and ``list_models()`` over one channel."""

    def __init__(self, target: str = DEFAULT_TARGET, timeout: float | None = 10.0):
        self.target = target
        self.timeout = timeout
        self._channel = grpc.insecure_channel(target)
        self._stub = pb_grpc.ClassifierStub(self._channel)

    def classify(self, text: str, **options: Unpack[OptionFields]) -> Result:
        checked = Options(**options)
        request = pb.ClassifyRequest(text=wire_text(text), **encode_options(checked))
        return _result(self._call(self._stub.Classify, request).result, checked)

    def classify_batch(self, texts: Sequence[str], **options: Unpack[OptionFields]) -> list[Result]:
        checked = Options(**options)
        wire = [wire_text(t) for t in texts]
        request = pb.ClassifyBatchRequest(texts=wire, **encode_options(checked))
        return [_result(r, checked) for r in self._call(self._stub.ClassifyBatch, request).results]

    def list_models(self) -> list[ModelInfo]:
        """The served models, in response order."""
        return _models(self._call(self._stub.ListModels, pb.ListModelsRequest()))

    def _call(self, method: Any, request: Any) -> Any:
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise _error(exc, self.target) from None

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

    async def classify(self, text: str, **options: Unpack[OptionFields]) -> Result:
        checked = Options(**options)
        request = pb.ClassifyRequest(text=wire_text(text), **encode_options(checked))
        return _result((await self._call("Classify", request)).result, checked)

    async def classify_batch(
        self, texts: Sequence[str], **options: Unpack[OptionFields]
    ) -> list[Result]:
        checked = Options(**options)
        wire = [wire_text(t) for t in texts]
        request = pb.ClassifyBatchRequest(texts=wire, **encode_options(checked))
        return [_result(r, checked) for r in (await self._call("ClassifyBatch", request)).results]

    async def list_models(self) -> list[ModelInfo]:
        """The served models, in response order."""
        return _models(await self._call("ListModels", pb.ListModelsRequest()))

    async def _call(self, method: str, request: Any) -> Any:
        try:
            return await getattr(self._open(), method)(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise _error(exc, self.target) from None

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
