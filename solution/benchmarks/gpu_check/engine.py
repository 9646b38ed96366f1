"""Step 6: the engine driven in-process through ``Engine.submit`` (no HTTP, no client), at low
load (one user) and at saturation, then a ``CLS_MAX_WAIT_MS`` sweep at half the saturation rate.

What this does not show: what a client sees (no sockets, no JSON, no front-end) or the GPU's
capacity (it is bounded by the engine's host path). The served path (``benchmarks.served``)
measures the real server under k6."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from solution.server.compute.families import Family
from solution.server.compute.models import LoadedModel
from solution.server.config import Settings
from solution.server.engine.engine import Engine
from solution.server.engine.limits import BatchingLimits

from ..checks import LabelSets
from ..engine_target import EngineTarget
from ..load import closed_loop, open_loop
from ..scenarios import Scenario, Stage
from ..stats import format_summary
from .common import Setup, capture_args


def labels_of(models: list[LoadedModel]) -> LabelSets:
    return {m.key: frozenset(m.labels) for m in models}


async def drive_engine(
    setup: Setup, models: list[LoadedModel], families: list[Family], texts: list[str]
) -> dict[str, Any]:
    args = setup.args
    limits = BatchingLimits.from_settings(Settings(), setup.device.type)
    engine = Engine(models, families, setup.device, limits)
    # as app.build_engine does: the one call beyond the engine's public API
    out: dict[str, Any] = {"capture": engine.runner.prepare("on", **capture_args(setup))}
    engine.start()
    await engine.warm_up(texts[:8])
    target = EngineTarget(engine, texts, labels_of(models), "engine")
    for users, name in ((1, "low_load"), (args.users, "saturation")):
        warmup = args.seconds / 4 if users > 1 else 0.0
        tally = await closed_loop(target, users, args.seconds, warmup_s=warmup)
        out[name] = {"users": users, **tally.summary()}
        print(format_summary(f"engine {users} users", out[name]), file=sys.stderr)
    await asyncio.to_thread(engine.stop)
    return out


async def sweep_waits(
    setup: Setup,
    models: list[LoadedModel],
    families: list[Family],
    texts: list[str],
    saturation_rps: float,
    waits_ms: list[float],
) -> dict[str, Any]:
    """CLS_MAX_WAIT_MS at half the saturation rate, a fresh engine (eager) per wait."""
    args, device = setup.args, setup.device
    rate = saturation_rps / 2
    scenario = Scenario("sweep", f"{rate:.1f}/s", rate, (Stage(args.seconds / 2, rate),))
    out: dict[str, Any] = {"rate_rps": rate}
    for wait in waits_ms:
        limits = BatchingLimits.from_settings(Settings(max_wait_ms=wait), device.type)
        engine = Engine(models, families, device, limits)
        engine.start()
        await engine.warm_up(texts[:8])
        target = EngineTarget(engine, texts, labels_of(models), f"engine wait {wait:g} ms")
        tally = await open_loop(target, scenario.arrivals(), max_vus=1024)
        out[f"{wait:g}"] = tally.summary()
        await asyncio.to_thread(engine.stop)
    return out
