"""``python -m solution.benchmarks load|replay|bench``: load a running service, replay the
reference scenarios against it, or run the whole benchmark suite (``make bench``).

    load   --url http://127.0.0.1:8000 --vus 32 --duration 20   closed loop
    load   --url ... --rate 20 --duration 30 --max-vus 50       open loop, fixed rate
    load   --url ... --ramp 10,60@30,60@30 --max-vus 50         open loop: 10 -> 60 in 30 s, held
    load   --grpc 127.0.0.1:50051 --vus 16 --duration 10        the same over gRPC
    replay --url ... --scale 0.1 [--rate-scale 1]               the four reference scenarios
    bench  [--plan short|full|smoke]                       peers, ratios, plots, README
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import uvloop

from . import scenarios
from .checks import LabelSets, check_http, expected_labels
from .grpc_client import CLASSIFY, GrpcTarget
from .http_client import HttpTarget, status_only
from .load import Target, closed_loop, open_loop
from .machine import CpuShare, machine_info
from .stats import format_summary
from .tokens import format_tokens, token_stats

DEFAULT_TEXTS = 2000


def add_target_args(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="HTTP service, e.g. http://127.0.0.1:8000 (POST /process)")
    where.add_argument("--grpc", help="gRPC service, host:port (classifier.v1.Classifier)")
    parser.add_argument("--texts", type=int, default=DEFAULT_TEXTS, help="distinct texts to cycle")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated texts")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    parser.add_argument("--no-check", action="store_true", help="only the status is checked")
    parser.add_argument(
        "--models-dir", help="model folders: label sets and token counts (default: the cache)"
    )
    parser.add_argument("--progress", type=float, default=10.0, help="seconds between lines")
    parser.add_argument("--json", type=Path, help="write the results here")


def make_target(args: argparse.Namespace, texts: list[str], labels: LabelSets | None) -> Target:
    if args.url:

        def check(status: int, body: bytes) -> tuple[str, str] | None:
            assert labels is not None
            return check_http(status, body, labels)

        return HttpTarget(
            args.url, texts, status_only if labels is None else check, args.timeout, "http"
        )
    return GrpcTarget(args.grpc, texts, CLASSIFY, labels, args.timeout, name="grpc")


def parse_ramp(spec: str) -> scenarios.Scenario:
    """``START,TARGET@SECONDS,...`` -> an open-loop scenario."""
    first, *rest = spec.split(",")
    stages = []
    for part in rest:
        target, _, seconds = part.partition("@")
        stages.append(scenarios.Stage(float(seconds), float(target)))
    if not stages:
        raise ValueError("--ramp needs at least one TARGET@SECONDS stage")
    return scenarios.Scenario("ramp", spec, float(first), tuple(stages))


def texts_and_labels(args: argparse.Namespace) -> tuple[list[str], LabelSets | None]:
    from solution.standins.corpus import reference_texts

    texts = reference_texts(args.texts, seed=args.seed)
    labels = None if args.no_check else expected_labels(models_dir=args.models_dir)
    return texts, labels


async def run_load(args: argparse.Namespace) -> dict[str, Any]:
    texts, labels = texts_and_labels(args)
    target = make_target(args, texts, labels)
    try:
        if args.vus:
            tally = await closed_loop(
                target, args.vus, args.duration, warmup_s=args.warmup, progress_s=args.progress
            )
            mode = {"mode": "closed", "vus": args.vus, "duration_s": args.duration}
        else:
            if args.ramp:
                scenario = parse_ramp(args.ramp)
            else:
                stage = scenarios.Stage(args.duration, args.rate)
                scenario = scenarios.Scenario("rate", f"{args.rate}/s", args.rate, (stage,))
            tally = await open_loop(
                target, scenario.arrivals(), args.max_vus, progress_s=args.progress
            )
            mode = {"mode": "open", "schedule": scenario.description, "max_vus": args.max_vus}
    finally:
        await target.aclose()
    summary = tally.summary()
    print(format_summary(target.name, summary))
    return {**mode, **summary, "tokens": token_stats(texts, args.models_dir)}


async def run_replay(args: argparse.Namespace) -> dict[str, Any]:
    texts, labels = texts_and_labels(args)
    target = make_target(args, texts, labels)
    plan = scenarios.reference(args.scale, args.rate_scale)
    try:
        results = await scenarios.replay(target, plan, progress_s=args.progress)
    finally:
        await target.aclose()
    for r in results:
        print(format_summary(f"{target.name} {r['scenario']}", r))
    return {
        "time_scale": args.scale,
        "rate_scale": args.rate_scale,
        "scenarios": results,
        "tokens": token_stats(texts, args.models_dir),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m solution.benchmarks", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="command", required=True)

    load = sub.add_parser("load", help="closed or open loop against a running service")
    add_target_args(load)
    mode = load.add_mutually_exclusive_group(required=True)
    mode.add_argument("--vus", type=int, help="closed loop: this many users back to back")
    mode.add_argument("--rate", type=float, help="open loop: requests per second")
    mode.add_argument("--ramp", help="open loop: START,TARGET@SECONDS,... (k6 stages)")
    load.add_argument("--duration", type=float, default=10.0, help="seconds (closed, --rate)")
    load.add_argument("--warmup", type=float, default=0.0, help="closed: not counted in req/s")
    load.add_argument("--max-vus", type=int, default=50, help="open loop: most users in flight")

    replay = sub.add_parser("replay", help="the reference client's four scenarios")
    add_target_args(replay)
    replay.add_argument("--scale", type=float, default=1.0, help="time scale (0.1 = 51 s)")
    replay.add_argument("--rate-scale", type=float, default=1.0, help="arrival rate factor")

    bench = sub.add_parser("bench", help="the benchmark suite (make bench / make bench-full)")
    bench.add_argument(
        "--plan",
        choices=("short", "full", "smoke"),
        default="short",
        help="short: make bench (~10 min); full: make bench-full; smoke: seconds, tiny models",
    )
    bench.add_argument("--out", type=Path, default=Path("solution/benchmarks/results"))
    bench.add_argument("--models-dir", default=".cache/standins-base")
    bench.add_argument(
        "--threads",
        type=int,
        default=0,
        help="intra-op threads of every model process (0: torch's default, all cores)",
    )
    bench.add_argument(
        "--omp-wait-policy",
        default="PASSIVE",
        help="OMP_WAIT_POLICY of every model process ('' leaves it unset); see suite.py",
    )
    bench.add_argument("--only", default="", help="comma-separated parts to run (debugging)")

    args = parser.parse_args(argv)
    if args.command == "bench":
        from .suite import main as run_suite

        return run_suite(args)

    share = CpuShare()
    command = [sys.executable, "-m", "solution.benchmarks", *(argv or sys.argv[1:])]
    runner = run_load if args.command == "load" else run_replay
    result = uvloop.run(runner(args))
    print(format_tokens(result.get("tokens")))
    document = {
        "command": command,
        "machine": machine_info(),
        "cpu_share": share.stop(),
        "result": result,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2, default=str) + "\n")
    failed = result.get("failed", 0) + sum(s["failed"] for s in result.get("scenarios", []))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
