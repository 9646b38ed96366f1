"""gRPC load client for ``classifier.v1.Classifier/Classify`` over grpc.aio.

The messages come from the generated stubs in ``solution/proto`` (whichever ``*_pb2`` module
declares the ``classifier.v1.Classifier`` service): the request and response classes are taken
from the service descriptor, requests are serialised once before the run and sent as bytes
through a generic ``channel.unary_unary``, so the hot path encodes nothing. Until the gRPC
front-end lands, ``find_codec`` returns None and the benchmarks skip gRPC, saying so.
"""

from __future__ import annotations

import importlib
import itertools
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .checks import LabelSets, check_result
from .load import Outcome

SERVICE = "classifier.v1.Classifier"
METHOD = "Classify"


@dataclass(frozen=True)
class Codec:
    path: str  # "/classifier.v1.Classifier/Classify"
    encode: Callable[[str], bytes]
    decode: Callable[[bytes], Any]  # -> the five-key result of the (first) text, as plain dicts
    module: str


def find_codec(package: str = "solution.proto") -> Codec | None:
    """The generated messages of the Classify method, or None when no stubs declare it."""
    try:
        pkg = importlib.import_module(package)
        from google.protobuf import json_format, message_factory
    except ImportError:
        return None
    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        for service in module.DESCRIPTOR.services_by_name.values():
            if service.full_name != SERVICE or METHOD not in service.methods_by_name:
                continue
            method = service.methods_by_name[METHOD]
            request_cls = message_factory.GetMessageClass(method.input_type)
            response_cls = message_factory.GetMessageClass(method.output_type)
            text_field = _text_field(method.input_type)

            def encode(text: str, cls: Any = request_cls, name: str = text_field) -> bytes:
                message = cls()
                target = getattr(message, name)
                if isinstance(target, str):
                    setattr(message, name, text)
                else:  # repeated string: one text per request, as the HTTP client sends
                    target.append(text)
                return bytes(message.SerializeToString())

            def decode(data: bytes, cls: Any = response_cls) -> Any:
                message = cls.FromString(data)
                as_dict = json_format.MessageToDict(message, preserving_proto_field_name=True)
                return _first_result(as_dict)

            return Codec(f"/{SERVICE}/{METHOD}", encode, decode, module.__name__)
    return None


def _text_field(descriptor: Any) -> str:
    for field in descriptor.fields:
        if field.type == field.TYPE_STRING:
            return str(field.name)
    raise ValueError(f"{descriptor.full_name} has no string field to carry the text")


def _first_result(value: Any) -> Any:
    """The response's per-model results for its first text, as {key: {"score", "label"}}.

    Accepts the shapes a proto for this API plausibly has: a map key -> prediction, a list of
    predictions that name their model, either one wrapped in a per-text list or message."""
    if isinstance(value, list):
        if value and all(isinstance(v, dict) and "label" in v for v in value):
            named = {str(v.get("key", v.get("model", v.get("name", "")))): v for v in value}
            return {k: {"score": v.get("score"), "label": v.get("label")} for k, v in named.items()}
        return _first_result(value[0]) if value else {}
    if isinstance(value, dict):
        if value and all(isinstance(v, dict) and "label" in v for v in value.values()):
            return {k: {"score": v.get("score"), "label": v.get("label")} for k, v in value.items()}
        if len(value) == 1:
            return _first_result(next(iter(value.values())))
    return value


class GrpcTarget:
    """``Classify`` of each text; ``channels`` HTTP/2 connections shared by the virtual users."""

    def __init__(
        self,
        address: str,
        texts: Sequence[str],
        codec: Codec,
        labels: LabelSets | None,
        timeout_s: float = 60.0,
        channels: int = 4,
        name: str = "grpc",
    ):
        self.address = address.removeprefix("grpc://")
        self.codec = codec
        self.requests = [codec.encode(t) for t in texts]
        self.payloads = len(self.requests)
        self.labels = labels
        self.timeout_s = timeout_s
        self.n_channels = channels
        self.name = name
        self._channels: list[Any] = []
        self._calls: list[Any] = []
        self._next = itertools.count()

    async def connect(self) -> GrpcExchange:
        import grpc

        if not self._channels:  # made inside the running loop (grpc/grpc#32480)
            for _ in range(self.n_channels):
                channel = grpc.aio.insecure_channel(
                    self.address, options=[("grpc.enable_http_proxy", 0)]
                )
                self._channels.append(channel)
                self._calls.append(channel.unary_unary(self.codec.path))
        return GrpcExchange(self, self._calls[next(self._next) % len(self._calls)])

    async def aclose(self) -> None:
        for channel in self._channels:
            await channel.close()
        self._channels.clear()
        self._calls.clear()


class GrpcExchange:
    def __init__(self, target: GrpcTarget, call: Any):
        self.target = target
        self.call = call
        self.broken = False

    async def send(self, index: int) -> Outcome:
        import grpc

        target = self.target
        try:
            data = await self.call(target.requests[index], timeout=target.timeout_s)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return "timeout", f"no answer within {target.timeout_s}s"
            return f"grpc_{exc.code().name.lower()}", str(exc.details())
        if target.labels is None:
            return None
        try:
            result = target.codec.decode(data)
        except Exception as exc:  # a response the stubs cannot parse is a failed check
            return "check_proto", repr(exc)
        return check_result(result, target.labels)

    def close(self) -> None:
        return None  # the channels are the target's
