"""The loads of one served-path run, each bounded in time: k6 closed loops and the spike over
HTTP, gRPC batch calls, each with ``/metrics`` read before and after (the service only)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..checks import LabelSets
from . import grpc_batch, k6, scrape


@dataclass(frozen=True)
class Plan:
    """What one run loads, and for how long."""

    users: tuple[int, ...]  # HTTP closed-loop users, service and peer
    seconds: float  # measured per level
    warmup_s: float
    grpc_callers: tuple[int, ...]
    grpc_batch: int
    spike_rates: tuple[float, float, float]  # start, middle, peak (req/s)
    spike_stage_s: float
    spike_hold_s: float
    spike_max_vus: int
    budget_s: float  # no load starts past this many seconds of the run

    def k6_limit_s(self, seconds: float) -> float:
        """A k6 run's own limit: its planned time, k6's start and graceful stop, and slack."""
        return seconds + 45.0


@dataclass
class Inputs:
    k6: str
    texts_file: Path
    labels_file: Path
    texts: list[str]
    labels: LabelSets
    log: Path


def with_metrics(base_url: str | None, result: dict[str, Any], before: dict[str, Any]) -> None:
    if base_url is not None:
        result["metrics"] = scrape.delta(before, scrape.scrape(base_url))


def http_closed(
    base_url: str, users: int, plan: Plan, inputs: Inputs, metrics: bool, mode: str = "closed"
) -> dict[str, Any]:
    """A closed loop of ``users`` k6 users: ``POST /process`` (``mode`` closed) or ``GET /health``
    (``mode`` health: the client's and the HTTP layer's round trip alone)."""
    env = {
        "MODE": mode,
        "BASE_URL": base_url,
        "TEXTS": str(inputs.texts_file),
        "LABELS": str(inputs.labels_file),
        "VUS": str(users),
        "WARMUP_S": f"{plan.warmup_s:g}",
        "SECONDS": f"{plan.seconds:g}",
    }
    before = scrape.scrape(base_url) if metrics else {}
    result = {
        "users": users,
        **k6.run(inputs.k6, env, plan.k6_limit_s(plan.warmup_s + plan.seconds), inputs.log),
    }
    with_metrics(base_url if metrics else None, result, before)
    return result


def http_spike(base_url: str, plan: Plan, inputs: Inputs, metrics: bool) -> dict[str, Any]:
    start, mid, peak = plan.spike_rates
    env = {
        "MODE": "spike",
        "BASE_URL": base_url,
        "TEXTS": str(inputs.texts_file),
        "LABELS": str(inputs.labels_file),
        "START_RATE": f"{start:g}",
        "MID_RATE": f"{mid:g}",
        "PEAK_RATE": f"{peak:g}",
        "STAGE_S": f"{plan.spike_stage_s:g}",
        "HOLD_S": f"{plan.spike_hold_s:g}",
        "MAX_VUS": str(plan.spike_max_vus),
    }
    before = scrape.scrape(base_url) if metrics else {}
    seconds = 2 * plan.spike_stage_s + plan.spike_hold_s
    result = {"peak_rps": peak, "max_vus": plan.spike_max_vus}
    result.update(k6.run(inputs.k6, env, plan.k6_limit_s(seconds), inputs.log))
    with_metrics(base_url if metrics else None, result, before)
    return result


def grpc_batches(
    base_url: str, address: str, callers: int, plan: Plan, inputs: Inputs
) -> dict[str, Any]:
    before = scrape.scrape(base_url)
    load = grpc_batch.closed_loop(
        address,
        inputs.texts,
        inputs.labels,
        batch=plan.grpc_batch,
        callers=callers,
        seconds=plan.seconds,
        warmup_s=plan.warmup_s,
    )
    limit = plan.k6_limit_s(plan.warmup_s + plan.seconds)
    try:
        result = asyncio.run(asyncio.wait_for(load, limit))
    except TimeoutError:
        result = {"callers": callers, "error": f"ran past its {limit:.0f} s limit"}
    with_metrics(base_url, result, before)
    return result


class Budget:
    """The run's clock: a load that would start past ``budget_s`` is recorded as skipped."""

    def __init__(self, budget_s: float):
        self.budget_s = budget_s
        self.started = time.perf_counter()

    def left(self) -> bool:
        return time.perf_counter() - self.started < self.budget_s

    def elapsed(self) -> float:
        return time.perf_counter() - self.started
