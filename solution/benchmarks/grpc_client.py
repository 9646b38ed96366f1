"""gRPC load client for ``classifier.v1.Classifier/Classify`` over grpc.aio.

Requests are serialised once before the run with the generated stubs and sent as bytes through a
generic ``channel.unary_unary``, so the hot path encodes nothing; answers are decoded and checked
like the HTTP client's.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from solution.proto.classifier.v1 import classifier_pb2 as pb

from .checks import LabelSets, check_result
from .load import Outcome


@dataclass(frozen=True)
class Codec:
    path: str  # "/classifier.v1.Classifier/Classify"
    encode: Callable[[str], bytes]
    decode: Callable[[bytes], Any]  # -> the five-key result, as /process answers it


def _encode(text: str) -> bytes:
    return bytes(pb.ClassifyRequest(text=text).SerializeToString())


def _decode(data: bytes) -> dict[str, dict[str, Any]]:
    result = pb.ClassifyResponse.FromString(data).result
    return {p.model: {"score": p.score, "label": p.label} for p in result.predictions}


CLASSIFY = Codec("/classifier.v1.Classifier/Classify", _encode, _decode)


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
