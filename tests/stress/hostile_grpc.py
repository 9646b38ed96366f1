"""Hostile gRPC payloads: raw request bytes for ``Classify`` and ``ClassifyBatch``.

Sent through a generic unary call with no serializer, so malformed protobuf reaches the server as
an attacker would send it. A correct server answers OK or INVALID_ARGUMENT (RESOURCE_EXHAUSTED for
a message over its size limit, or when overloaded) — never INTERNAL, UNKNOWN or silence.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from solution.proto.classifier.v1 import classifier_pb2 as pb
from solution.standins.corpus import reference_texts

CLASSIFY = "/classifier.v1.Classifier/Classify"
CLASSIFY_BATCH = "/classifier.v1.Classifier/ClassifyBatch"
LIST_MODELS = "/classifier.v1.Classifier/ListModels"
KEYS = ["cardiffnlp", "ivanlau", "svalabs", "EIStakovskii", "jy46604790"]


@dataclass(frozen=True)
class GrpcCase:
    kind: str
    method: str
    data: bytes
    expect: str  # "ok" | "reject" | "any"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:  # wire type 2: length-delimited
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def options_case(rng: random.Random, text: str) -> GrpcCase:
    """Options: valid ones answered OK, a bad field INVALID_ARGUMENT; ListModels with any body."""
    roll = rng.random()
    if roll < 0.1:
        return GrpcCase("list-models", LIST_MODELS, rng.choice([b"", _field(9, b"junk")]), "ok")
    if roll < 0.6:
        options = pb.Options(
            models=rng.sample(KEYS, rng.randint(0, len(KEYS))),
            raw_scores=rng.random() < 0.5,
        )
        if rng.random() < 0.6:
            options.top_k = rng.choice([0, 1, 3, 1000])
        if rng.random() < 0.3:
            options.truncate = True
        data = pb.ClassifyBatchRequest(texts=[text, ""], options=options).SerializeToString()
        return GrpcCase("options", CLASSIFY_BATCH, data, "ok")
    bad = rng.choice(
        [
            pb.Options(models=["nope"]),
            pb.Options(models=[KEYS[0], KEYS[0]]),
            pb.Options(top_k=-1),
            pb.Options(top_k=1001),
            pb.Options(truncate=False),  # with a text over the token limit
        ]
    )
    data = pb.ClassifyRequest(text="a " * 2000, options=bad).SerializeToString()
    return GrpcCase("options-bad", CLASSIFY, data, "reject")


def grpc_case(rng: random.Random) -> GrpcCase:
    text = reference_texts(1, seed=rng.randrange(1 << 30))[0]
    if rng.random() < 0.15:
        return options_case(rng, text)
    roll = rng.random()
    if roll < 0.2:
        return GrpcCase("valid", CLASSIFY, pb.ClassifyRequest(text=text).SerializeToString(), "ok")
    if roll < 0.3:
        texts = [text, "", "\u0000" * 10][: rng.randint(0, 3)]
        data = pb.ClassifyBatchRequest(texts=texts).SerializeToString()
        return GrpcCase("valid-batch", CLASSIFY_BATCH, data, "ok")
    if roll < 0.4:  # more texts than a request may carry
        data = pb.ClassifyBatchRequest(texts=["x"] * rng.randint(257, 2000)).SerializeToString()
        return GrpcCase("too-many-texts", CLASSIFY_BATCH, data, "reject")
    if roll < 0.5:  # a string field that is not UTF-8
        return GrpcCase(
            "invalid-utf8",
            rng.choice([CLASSIFY, CLASSIFY_BATCH]),
            _field(1, b"\xff\xfe\xc3\x28"),
            "reject",
        )
    if roll < 0.6:  # a length prefix longer than the message
        return GrpcCase(
            "truncated", CLASSIFY, _varint(1 << 3 | 2) + _varint(1000) + b"abc", "reject"
        )
    if roll < 0.65:  # over the 1 MiB message limit
        return GrpcCase("oversized", CLASSIFY, _field(1, b"a" * (2 << 20)), "reject")
    if roll < 0.75:  # unknown fields and other wire types are skipped by protobuf: still valid
        data = _field(7, b"junk") + _varint(2 << 3 | 0) + _varint(12345) + _field(1, b"hi")
        return GrpcCase("unknown-fields", CLASSIFY, data, "ok")
    if roll < 0.85:
        noise = bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
        return GrpcCase("random-bytes", rng.choice([CLASSIFY, CLASSIFY_BATCH]), noise, "any")
    data = bytearray(pb.ClassifyRequest(text=text).SerializeToString())
    for _ in range(rng.randint(1, 6)):
        if data:
            data[rng.randrange(len(data))] = rng.randrange(256)
    return GrpcCase("mutation", CLASSIFY, bytes(data), "any")


def grpc_cases(n: int, seed: int = 0) -> Iterator[GrpcCase]:
    rng = random.Random(seed)
    for _ in range(n):
        yield grpc_case(rng)


def flood_cases(n: int, seed: int = 0) -> list[GrpcCase]:
    """``n`` valid ``Classify`` requests to send all at once: a burst, not hostile bytes. Each must
    be answered OK, or RESOURCE_EXHAUSTED with ``classifier-error: Overloaded`` once the queue is
    full; never a bare CANCELLED from grpc."""
    texts = reference_texts(n, seed=seed)
    return [
        GrpcCase("flood", CLASSIFY, pb.ClassifyRequest(text=t).SerializeToString(), "ok")
        for t in texts
    ]
