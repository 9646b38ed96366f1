"""``python -m autotests --api-host URL [--scale F]``: replay, check, summarise, exit 0 or 1.

Every flag has an environment variable, which is how the Helm Job sets them: ``API_HOST``,
``PARTICIPANT_NAME``, ``SCALE``, ``RATE_SCALE``, ``READY_TIMEOUT_S``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uvloop

from solution.benchmarks import scenarios
from solution.benchmarks.checks import check_http, expected_labels
from solution.benchmarks.http_client import HttpTarget
from solution.benchmarks.machine import machine_info
from solution.benchmarks.procs import http_get_status
from solution.benchmarks.stats import format_summary
from solution.benchmarks.tokens import format_tokens, token_stats
from solution.standins.corpus import reference_texts


def parse_args(argv: Sequence[str] | None, env: Mapping[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m autotests", description=__doc__)
    parser.add_argument(
        "--api-host",
        default=env.get("API_HOST"),
        help="the service, e.g. http://classifier:8000 [API_HOST]",
    )
    parser.add_argument(
        "--participant",
        default=env.get("PARTICIPANT_NAME", ""),
        help="name printed with the results [PARTICIPANT_NAME]",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=float(env.get("SCALE", "1.0")),
        help="time scale of the scenarios: 1 = the reference 8.5 min, 0.1 = 51 s [SCALE]",
    )
    parser.add_argument(
        "--rate-scale",
        type=float,
        default=float(env.get("RATE_SCALE", "1.0")),
        help="arrival-rate factor, for a service smaller than the reference [RATE_SCALE]",
    )
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=float(env.get("READY_TIMEOUT_S", "600")),
        help="seconds to wait for GET /ready before starting [READY_TIMEOUT_S]",
    )
    parser.add_argument("--texts", type=int, default=2000, help="distinct texts to cycle")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated texts")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request (k6's)")
    parser.add_argument("--progress", type=float, default=15.0, help="seconds between lines")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if not args.api_host:
        parser.error("--api-host (or API_HOST) is required")
    return args


def wait_ready(url: str, timeout_s: float) -> bool:
    """Poll ``GET /ready`` until 200 (a 404 counts: a service without the route)."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    deadline = time.monotonic() + timeout_s
    while True:
        status = http_get_status(port, "/ready", host=host)
        if status in (200, 404):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(1.0)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = parse_args(argv, os.environ if env is None else env)
    who = args.participant or "(no PARTICIPANT_NAME)"
    print(f"autotests for {who} against {args.api_host}, time scale {args.scale}", flush=True)
    if not wait_ready(args.api_host, args.ready_timeout):
        print(f"FAIL: {args.api_host}/ready did not answer 200 within {args.ready_timeout}s")
        return 1
    labels = expected_labels()

    def check(status: int, body: bytes) -> tuple[str, str] | None:
        return check_http(status, body, labels)

    texts = reference_texts(args.texts, seed=args.seed)
    target = HttpTarget(args.api_host, texts, check, args.timeout, name="autotests")
    plan = scenarios.reference(args.scale, args.rate_scale)

    async def go() -> list[dict[str, Any]]:
        try:
            return await scenarios.replay(target, plan, progress_s=args.progress)
        finally:
            await target.aclose()

    results = uvloop.run(go())
    failed = sum(r["failed"] for r in results)
    print()
    for r in results:
        print(format_summary(r["scenario"], r))
        for sample in r["error_samples"][:3]:
            print(f"    e.g. {sample}")
    tokens = token_stats(texts, None)
    print(format_tokens(tokens))
    total_ok = sum(r["ok"] for r in results)
    unsent = sum(r["unsent"] for r in results)
    verdict = "PASS" if failed == 0 and total_ok > 0 else "FAIL"
    print(
        f"\n{verdict}: {who}: {total_ok} answers passed the checks, {failed} failed, "
        f"{unsent} not sent (every virtual user busy, as k6 drops them)"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "participant": args.participant,
            "api_host": args.api_host,
            "time_scale": args.scale,
            "rate_scale": args.rate_scale,
            "verdict": verdict,
            "tokens": tokens,
            "machine": machine_info(),
            "scenarios": results,
        }
        args.json.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
