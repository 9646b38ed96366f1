"""``python -m solution.client [--grpc] [--target host:port] [--timeout S] [TEXT ...]``

Prints the JSON that HTTP ``/process`` answers: an object for one text, an array for several.
Without TEXT arguments the texts are read from stdin, one per line. Exit status: 0 answered,
1 the server is unreachable, timed out or refused (one line on stderr says which), 2 usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import orjson

from . import grpc_client, http_client
from .results import ClientError, Result, to_json

# Texts per request when many are given: the server's default max_texts_per_request.
CHUNK_TEXTS = 256


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m solution.client",
        description="Classify texts with every model of a running classifier server.",
    )
    parser.add_argument("--grpc", action="store_true", help="use gRPC instead of HTTP")
    parser.add_argument(
        "--target",
        help=f"host:port of the server (default {http_client.DEFAULT_TARGET} for HTTP, "
        f"{grpc_client.DEFAULT_TARGET} for gRPC)",
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, metavar="S", help="seconds per request (10)"
    )
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts (default: stdin lines)")
    return parser.parse_args(argv)


def classify(args: argparse.Namespace, texts: list[str], single: bool) -> Result | list[Result]:
    client: grpc_client.GrpcClient | http_client.HttpClient
    if args.grpc:
        client = grpc_client.GrpcClient(args.target or grpc_client.DEFAULT_TARGET, args.timeout)
    else:
        client = http_client.HttpClient(args.target or http_client.DEFAULT_TARGET, args.timeout)
    with client:
        if single:
            return client.classify(texts[0])
        results: list[Result] = []
        for start in range(0, len(texts), CHUNK_TEXTS):
            results += client.classify_batch(texts[start : start + CHUNK_TEXTS])
        return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    texts = list(args.texts) if args.texts else sys.stdin.read().splitlines()
    if not texts:
        print("error: no texts: pass TEXT arguments or lines on stdin", file=sys.stderr)
        return 2
    try:
        results = classify(args, texts, single=len(texts) == 1)
    except ClientError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(orjson.dumps(to_json(results)) + b"\n")
    return 0
