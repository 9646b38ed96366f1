"""CLS_MAX_WAIT_MS measured on the engine itself (no HTTP), models loaded once:
``python -m solution.benchmarks.peers.engine_sweep --models-dir DIR --capacity RPS --json OUT``

For each wait, a fresh ``Engine`` over the same loaded models serves two open-loop loads, at
``--low`` and ``--high`` times ``--capacity`` (texts/s, from the limit run): the low level shows
what the wait costs an idle service, the high one whether it buys throughput or latency under load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import uvloop

from solution.server import config
from solution.server.app import build_engine
from solution.server.engine.engine import Engine
from solution.standins.corpus import reference_texts

from ..checks import expected_labels
from ..engine_target import EngineTarget
from ..load import open_loop
from ..scenarios import Scenario, Stage
from ..stats import format_summary


async def sweep(args: argparse.Namespace) -> dict[str, Any]:
    settings = config.load(
        [],
        environ={"CLS_MODELS_DIR": args.models_dir, "CLS_DEVICE": "cpu", "CLS_DTYPE": args.dtype},
    )
    base = await asyncio.to_thread(build_engine, settings)
    texts = reference_texts(args.texts, seed=args.seed)
    labels = expected_labels(models_dir=args.models_dir)
    out: dict[str, Any] = {"capacity_rps": args.capacity, "levels": {}, "waits_ms": args.waits}
    for level_name, factor in (("low", args.low), ("high", args.high)):
        rate = args.capacity * factor
        scenario = Scenario(level_name, f"{rate:.2f}/s", rate, (Stage(args.seconds, rate),))
        rows = {}
        for wait_ms in args.waits:
            limits = replace(base.limits, max_wait_s=wait_ms / 1000.0)
            engine = Engine(base.models, base.families, base.runner.device, limits)
            engine.start()
            await engine.warm_up(texts[:4])
            target = EngineTarget(engine, texts, labels, f"engine wait {wait_ms} ms")
            tally = await open_loop(target, scenario.arrivals(), max_vus=256)
            summary = tally.summary()
            summary["rate_rps"] = rate
            rows[str(wait_ms)] = summary
            print(format_summary(f"{target.name} {level_name}", summary), file=sys.stderr)
            await asyncio.to_thread(engine.stop)
        out["levels"][level_name] = rows
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models-dir", required=True)
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument("--capacity", type=float, required=True, help="texts/s at saturation")
    parser.add_argument("--waits", default="0,5,20", help="CLS_MAX_WAIT_MS values")
    parser.add_argument("--low", type=float, default=0.2, help="low load, times capacity")
    parser.add_argument("--high", type=float, default=0.8, help="high load, times capacity")
    parser.add_argument("--seconds", type=float, default=15.0, help="per wait and level")
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    args.waits = [float(w) for w in args.waits.split(",")]
    result = uvloop.run(sweep(args))
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
