"""The reference client's four k6 scenarios (shared/models.md), scaled, and their replay.

The reference script runs them one after the other, about 8.5 minutes in all. Ramp durations are
not given in full in the brief; the stages below are our reading of it and add up to 510 s:

1. ``steady``: 1 request/s for 60 s, one virtual user;
2. ``ramp``: 10 -> 30 -> 60 req/s, 60 held 60 s, 40 held 60 s, back to 60, down to 0 (50 users);
3. ``spike``: 10 -> 30 -> 200 req/s, 200 held 120 s (50 users: 200/s is reachable only while
   latency stays <= 250 ms; the rest are unsent);
4. ``closed``: 10 users back to back for 120 s.

``time_scale`` multiplies every duration (0.1 replays the whole set in 51 s); ``rate_scale``
multiplies every arrival rate, so that a machine with a fraction of the reference card's capacity
sees the same load relative to its capacity. The closed loop keeps its 10 users.

Arrivals follow k6's ramping-arrival-rate: request ``i`` starts when the integral of the rate
reaches ``i`` (the first at time 0), so a linear ramp gives quadratically spaced start times.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from .load import Target, closed_loop, open_loop


@dataclass(frozen=True)
class Stage:
    duration_s: float
    target_rps: float  # the rate reached, linearly, at the end of the stage


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    start_rps: float = 0.0
    stages: tuple[Stage, ...] = ()
    max_vus: int = 1
    vus: int = 0  # > 0: a closed loop of this many users for ``closed_s``
    closed_s: float = 0.0

    @property
    def closed(self) -> bool:
        return self.vus > 0

    @property
    def duration_s(self) -> float:
        return self.closed_s if self.closed else sum(s.duration_s for s in self.stages)

    def scaled(self, time_scale: float = 1.0, rate_scale: float = 1.0) -> Scenario:
        if time_scale <= 0 or rate_scale <= 0:
            raise ValueError("time and rate scales must be > 0")
        return replace(
            self,
            start_rps=self.start_rps * rate_scale,
            stages=tuple(
                Stage(s.duration_s * time_scale, s.target_rps * rate_scale) for s in self.stages
            ),
            closed_s=self.closed_s * time_scale,
        )

    def rate_at(self, t: float) -> float:
        """The arrival rate (req/s) at ``t`` seconds into the scenario."""
        rate, elapsed = self.start_rps, 0.0
        for stage in self.stages:
            if t < elapsed + stage.duration_s:
                return rate + (stage.target_rps - rate) * (t - elapsed) / stage.duration_s
            rate, elapsed = stage.target_rps, elapsed + stage.duration_s
        return 0.0

    def arrivals(self) -> list[float]:
        """Start times (seconds from the scenario's start) of an open-loop scenario's requests."""
        times: list[float] = []
        rate, elapsed, done = self.start_rps, 0.0, 0.0  # ``done``: the rate's integral so far
        for stage in self.stages:
            d, r1 = stage.duration_s, stage.target_rps
            slope = (r1 - rate) / d if d > 0 else 0.0
            area = (rate + r1) / 2 * d
            i = math.ceil(done - 1e-9)
            while i < done + area - 1e-9:
                need = i - done  # requests still to start within this stage, before this one
                if abs(slope) < 1e-12:
                    t = need / rate
                else:
                    t = (-rate + math.sqrt(max(rate * rate + 2 * slope * need, 0.0))) / slope
                times.append(elapsed + min(max(t, 0.0), d))
                i += 1
            rate, elapsed, done = r1, elapsed + d, done + area
        return times

    def planned(self) -> int:
        return 0 if self.closed else len(self.arrivals())


REFERENCE: tuple[Scenario, ...] = (
    Scenario("steady", "1 req/s for 60 s, 1 user", 1.0, (Stage(60, 1.0),), max_vus=1),
    Scenario(
        "ramp",
        "10 -> 30 -> 60 req/s, hold 60, 40, back to 60, down (max 50 users)",
        10.0,
        (
            Stage(15, 30),
            Stage(15, 60),
            Stage(60, 60),
            Stage(10, 40),
            Stage(60, 40),
            Stage(10, 60),
            Stage(10, 60),
            Stage(20, 0),
        ),
        max_vus=50,
    ),
    Scenario(
        "spike",
        "10 -> 30 -> 200 req/s, hold 200 for 120 s (max 50 users)",
        10.0,
        (Stage(5, 30), Stage(5, 200), Stage(120, 200)),
        max_vus=50,
    ),
    Scenario("closed", "10 users back to back for 120 s", vus=10, closed_s=120),
)


def reference(time_scale: float = 1.0, rate_scale: float = 1.0) -> list[Scenario]:
    return [s.scaled(time_scale, rate_scale) for s in REFERENCE]


async def replay(
    target: Target, scenarios: Sequence[Scenario], *, progress_s: float = 0.0
) -> list[dict[str, Any]]:
    """Run ``scenarios`` one after the other against ``target``; one summary dict each."""
    results = []
    for s in scenarios:
        if s.closed:
            tally = await closed_loop(
                target, s.vus, s.closed_s, name=f"{target.name} {s.name}", progress_s=progress_s
            )
        else:
            tally = await open_loop(
                target,
                s.arrivals(),
                s.max_vus,
                name=f"{target.name} {s.name}",
                progress_s=progress_s,
            )
        summary = tally.summary()
        summary.update(
            scenario=s.name,
            description=s.description,
            planned=s.planned(),
            scheduled_s=round(s.duration_s, 3),
        )
        results.append(summary)
    return results
