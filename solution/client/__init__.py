"""Clients of the classifier service: HTTP and gRPC, each sync and asyncio, one result type.

    from solution.client import GrpcClient, HttpClient

    with HttpClient("127.0.0.1:8000") as client:
        result = client.classify("I love this")      # {"cardiffnlp": Prediction(...), ...}
    with GrpcClient("127.0.0.1:50051") as client:
        results = client.classify_batch(["a", "b"])  # one Result per text, in order
        client.classify("I love this", models=["cardiffnlp"], top_k=2)  # {"cardiffnlp": [...]}
        client.list_models()                          # [ModelInfo(key="cardiffnlp", ...), ...]

Options (keywords of ``classify`` and ``classify_batch``, the same on both protocols):
``models`` (answer only these keys), ``top_k`` (k: a ranked list of the k best per model; None:
every label; left out: one ``Prediction`` as the contract answers), ``raw_scores`` (logits),
``truncate=False`` (a text over a model's token limit is refused instead of cut). Without options
the request is the contract's bare body.

Errors: ``Unreachable`` (no server), ``TimedOut``, ``Refused`` (``.status``, ``.message``), all
``ClientError``. ``python -m solution.client --help`` is the command-line front of the same.
"""

from .grpc_client import AsyncGrpcClient, GrpcClient
from .http_client import AsyncHttpClient, HttpClient
from .options import SINGLE, Options
from .results import (
    ClientError,
    ModelInfo,
    Prediction,
    Refused,
    Result,
    TimedOut,
    Unreachable,
    from_json,
    to_json,
)

__all__ = [
    "SINGLE",
    "AsyncGrpcClient",
    "AsyncHttpClient",
    "ClientError",
    "GrpcClient",
    "HttpClient",
    "ModelInfo",
    "Options",
    "Prediction",
    "Refused",
    "Result",
    "TimedOut",
    "Unreachable",
    "from_json",
    "to_json",
]
