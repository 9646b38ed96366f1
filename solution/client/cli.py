"""``python -m solution.client [--grpc] [--target host:port] [--timeout S] [options] [TEXT ...]``

Prints the JSON that HTTP ``/process`` answers: an object for one text, an array for several.
Without TEXT arguments the texts are read from stdin, one per line. The per-request options are
flags (``--models a,b``, ``--top-k N``, ``--all-labels``, ``--raw-scores``, ``--no-truncate``);
``--list-models`` prints what ``GET /models`` answers instead. Exit status: 0 answered, 1 the
server is unreachable, timed out or refused (one line on stderr says which), 2 usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import orjson

from . import grpc_client, http_client
from .options import SINGLE, OptionFields, Options
from .results import ClientError, ModelInfo, Result, to_json

# Texts per request when many are given: the server's default max_texts_per_request.
CHUNK_TEXTS = 256


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m solution.client",
        description="Classify texts with the models of a running classifier server.",
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
    per_request = parser.add_argument_group(
        "per-request options (without any, the request is the contract's bare body)"
    )
    per_request.add_argument(
        "--models",
        type=lambda value: value.split(","),
        metavar="A,B",
        help="answer only these models (comma-separated keys; see --list-models)",
    )
    ranking = per_request.add_mutually_exclusive_group()
    ranking.add_argument(
        "--top-k",
        type=int,
        default=SINGLE,
        metavar="N",
        help="each model answers a list of its N best labels, best first",
    )
    ranking.add_argument(
        "--all-labels",
        dest="top_k",
        action="store_const",
        const=None,
        help="each model answers every label, best first",
    )
    per_request.add_argument(
        "--raw-scores", action="store_true", help="the models' logits instead of probabilities"
    )
    per_request.add_argument(
        "--no-truncate",
        dest="truncate",
        action="store_false",
        help="refuse a text over a model's token limit instead of cutting it",
    )
    parser.add_argument(
        "--list-models",
        action="store_true",
        help="print the served models (what GET /models answers) instead of classifying",
    )
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts (default: stdin lines)")
    args = parser.parse_args(argv)
    args.options = OptionFields(
        models=args.models, top_k=args.top_k, raw_scores=args.raw_scores, truncate=args.truncate
    )
    try:
        asked = not Options(**args.options).is_default  # the client's own checks, before any I/O
    except ValueError as exc:
        parser.error(str(exc))
    if args.list_models and (args.texts or asked):
        parser.error("--list-models takes no texts and no per-request options")
    return args


def connect(args: argparse.Namespace) -> grpc_client.GrpcClient | http_client.HttpClient:
    if args.grpc:
        return grpc_client.GrpcClient(args.target or grpc_client.DEFAULT_TARGET, args.timeout)
    return http_client.HttpClient(args.target or http_client.DEFAULT_TARGET, args.timeout)


def classify(args: argparse.Namespace, texts: list[str], single: bool) -> Result | list[Result]:
    fields: OptionFields = args.options
    with connect(args) as client:
        if single:
            return client.classify(texts[0], **fields)
        results: list[Result] = []
        for start in range(0, len(texts), CHUNK_TEXTS):
            results += client.classify_batch(texts[start : start + CHUNK_TEXTS], **fields)
        return results


def list_models(args: argparse.Namespace) -> list[ModelInfo]:
    with connect(args) as client:
        return client.list_models()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    texts: list[str] = []
    if not args.list_models:
        texts = list(args.texts) if args.texts else sys.stdin.read().splitlines()
        if not texts:
            print("error: no texts: pass TEXT arguments or lines on stdin", file=sys.stderr)
            return 2
    try:
        if args.list_models:
            output = {"models": [m.to_json() for m in list_models(args)]}
        else:
            output = to_json(classify(args, texts, single=len(texts) == 1))
    except ClientError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(orjson.dumps(output) + b"\n")
    return 0
