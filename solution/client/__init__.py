"""Clients of the classifier service: HTTP and gRPC, each sync and asyncio, one result type.

    from solution.client import GrpcClient, HttpClient

    with HttpClient("127.0.0.1:8000") as client:
        result = client.classify("I love this")      # {"cardiffnlp": Prediction(...), ...}
    with GrpcClient("127.0.0.1:50051") as client:
        results = client.classify_batch(["a", "b"])  # one Result per text, in order

Errors: ``Unreachable`` (no server), ``TimedOut``, ``Refused`` (``.status``, ``.message``), all
``ClientError``. ``python -m solution.client --help`` is the command-line front of the same.
"""

from .grpc_client import AsyncGrpcClient, GrpcClient
from .http_client import AsyncHttpClient, HttpClient
from .results import (
    ClientError,
    Prediction,
    Refused,
    Result,
    TimedOut,
    Unreachable,
    from_json,
    to_json,
)

__all__ = [
    "AsyncGrpcClient",
    "AsyncHttpClient",
    "ClientError",
    "GrpcClient",
    "HttpClient",
    "Prediction",
    "Refused",
    "Result",
    "TimedOut",
    "Unreachable",
    "from_json",
    "to_json",
]
