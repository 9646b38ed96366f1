"""``python -m solution.benchmarks.gpu_check --standins DIR --out DIR [--allow-cpu]``: the command
line and the order of the steps (see the package's docstring)."""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
from functools import partial
from pathlib import Path
from typing import Any

import torch
import transformers

from solution.server.compute.families import Family
from solution.server.compute.graphs import capture_eager
from solution.server.compute.models import LoadedModel
from solution.server.compute.runner import Runner

from ..gpu_report import Record
from ..load_texts import LOAD_TEXTS, load_texts
from . import __doc__ as package_doc
from .capture import capture_step, graphs_vs_eager
from .common import Setup, Step, build_models, families_of, missing_inputs, release, run_steps
from .engine import drive_engine, sweep_waits
from .limit import graph_limit
from .parity import parity
from .sync import sync_debug
from .targets import targets
from .timing import TIMING_BATCHES, span_ops, timing
from .winner import drive_winner


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(package_doc or "").split("\n\n")[0])
    parser.add_argument("--standins", type=Path, default=Path(".cache/standins-tiny"))
    parser.add_argument("--out", type=Path, required=True, help="folder for the JSON and Markdown")
    parser.add_argument("--seconds", type=float, default=8.0, help="per engine/peer load level")
    parser.add_argument("--users", type=int, default=256, help="closed-loop users at saturation")
    parser.add_argument(
        "--limit-rows",
        "--limit-batches",  # the name before the limit ran graphs
        dest="limit_rows",
        default="1,8,32,64,128,256",
        help="texts per graph call in the graph limit",
    )
    parser.add_argument("--min-seconds", type=float, default=2.0, help="per limit batch size")
    parser.add_argument("--texts", type=int, default=LOAD_TEXTS, help="load texts (load_texts)")
    parser.add_argument("--parity-texts", type=int, default=96)
    parser.add_argument("--waits", default="0,1,2", help="CLS_MAX_WAIT_MS values to sweep")
    parser.add_argument("--timing-batches", default=",".join(map(str, TIMING_BATCHES)))
    parser.add_argument("--capture-budget-s", type=float, default=30.0, help="per capture")
    parser.add_argument("--graph-rows", type=int, default=128, help="largest captured batch")
    parser.add_argument("--graph-length", type=int, default=512, help="largest captured length")
    parser.add_argument("--budget-s", type=float, default=240.0, help="skip steps past this")
    parser.add_argument("--as-is", action="store_true", help="speed steps on the stand-ins' size")
    parser.add_argument("--allow-cpu", action="store_true", help="smoke-test this script on cpu")
    return parser.parse_args(argv)


def describe(args: argparse.Namespace, cuda: bool, half: torch.dtype) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "command": [sys.executable, "-m", "solution.benchmarks.gpu_check", *sys.argv[1:]],
        "device": torch.cuda.get_device_name(0) if cuda else "cpu (smoke test, not a GPU result)",
        "smoke_test": not cuda,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "dtype": str(half).removeprefix("torch."),
        "standins": str(args.standins),
        "hf_hub_offline": os.environ.get("HF_HUB_OFFLINE"),
    }
    if cuda:
        free, total = torch.cuda.mem_get_info()
        doc["gpu"] = {
            "capability": ".".join(map(str, torch.cuda.get_device_capability(0))),
            "memory_gib": round(total / 2**30, 1),
            "free_gib": round(free / 2**30, 1),
        }
    return doc


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    half = torch.float16 if cuda else torch.bfloat16
    doc = describe(args, cuda, half)
    smoke = args.allow_cpu and not cuda
    record = Record(args.out, "gpu-check-cpu-smoke" if smoke else "gpu-check", doc)
    missing = ([] if cuda or args.allow_cpu else ["a CUDA device"]) + missing_inputs(args.standins)
    if missing:
        doc["missing"] = missing
        record.check("inputs present", False, "missing: " + ", ".join(missing))
        record.save()
        print("gpu_check cannot run; missing:\n  " + "\n  ".join(missing), file=sys.stderr)
        print(
            f"build the stand-ins with: python -m solution.standins --size tiny {args.standins}",
            file=sys.stderr,
        )
        return 2
    setup = Setup(args, device, half, None if cuda else capture_eager)
    texts = load_texts(args.texts)

    with record.step("parity") as result:
        parity(result, record, setup)
    with record.step("sync_debug") as result:
        sync_debug(result, record, setup)

    models: list[LoadedModel] = []
    with record.step("base_models") as result:
        models = build_models(args.standins, device, half, args.as_is)
        result["models"] = [m.key for m in models]
        config: Any = models[0].model.config
        result["hidden_size"] = int(config.hidden_size)
    if not models:
        return finish(record)
    speed_steps(record, setup, models, families_of(models), texts)
    return finish(record)


def finish(record: Record) -> int:
    record.save()
    print((record.out / f"{record.name}.md").read_text())
    return 0 if record.passed() else 1


def speed_steps(
    record: Record,
    setup: Setup,
    models: list[LoadedModel],
    families: list[Family],
    texts: list[str],
) -> None:
    args = setup.args
    runner = Runner(models, setup.device, ops=span_ops(setup.device))
    eager = Runner(models, setup.device)  # never prepared: the eager reference
    steps: list[Step] = [
        ("capture", partial(capture_step, runner=runner, setup=setup)),
        (
            "graphs_vs_eager",
            partial(graphs_vs_eager, record=record, runner=runner, eager=eager, families=families),
        ),
        ("timing", partial(timing, args=args, runner=runner, families=families, texts=texts)),
    ]
    run_steps(record, args, steps)
    steps.clear()
    del runner, eager  # their graphs' pools go before the limit and the engine capture their own
    release()

    def limit(r: dict[str, Any]) -> None:
        graph_limit(r, args=args, setup=setup, models=models, families=families, texts=texts)

    def engine(r: dict[str, Any]) -> None:
        r.update(asyncio.run(drive_engine(setup, models, families, texts)))

    def peer(r: dict[str, Any]) -> None:
        r.update(asyncio.run(drive_winner(args, models, texts)))

    run_steps(record, args, [("limit", limit), ("engine", engine), ("winner", peer)])
    sat = record.doc["steps"].get("engine", {}).get("saturation", {}).get("throughput_rps")
    if sat and args.waits:
        waits = [float(w) for w in args.waits.split(",")]

        def sweep(r: dict[str, Any]) -> None:
            r.update(asyncio.run(sweep_waits(setup, models, families, texts, sat, waits)))

        run_steps(record, args, [("max_wait_sweep", sweep)])
    targets(record)


if __name__ == "__main__":
    sys.exit(main())
