"""What a forward call costs, and the rule that picks graph replay or eager from it: pure
functions over a cost table, so the rule is tested on the CPU with made-up tables.

A ``CostTable`` holds the seconds of one call set (every model once) at each captured shape
replayed from its graphs, and a line for an eager call set: a fixed host cost plus a cost per
padded token. The runner measures it on the device at start-up (``graphs.measure``,
``from_samples``); where nothing was measured (the CPU, graphs off) ``default_table`` stands in.

The rule (``choose``): a call replays the cheapest captured bucket that holds it, unless running
its own shape eager costs less. On a large GPU an eager call set costs 25-29 ms of host time at
every batch size (measured on an H200, ../shared/GPU.md) while replays enqueue in about 1 ms, so
nearly every call that fits a bucket replays; on a small GPU a bucket twice the call's tokens may
cost more GPU time than the launches it saves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from solution.server.compute.buckets import Shape

# The stand-in table's figures, for when nothing was measured. Host cost of an eager call set of
# the five models: 25-29 ms on an H200 (gpu_check, 2026-12-04); a replayed set enqueues in
# 1.2 ms there. Per padded token: five base encoders at ~78k tokens/s each in fp16 on a T4 (the
# target card; ../shared/GPU.md), i.e. ~64 us per token per set: the smallest card the service
# runs on, so padding is priced high rather than low.
DEFAULT_EAGER_BASE_S = 0.025
DEFAULT_REPLAY_BASE_S = 0.0012
DEFAULT_TOKEN_S = 5 / 78_000


@dataclass(frozen=True)
class CostTable:
    """Seconds per call set: ``replay_s[shape]`` for the captured shapes; eager at ``rows x
    length`` as ``eager_base_s + eager_token_s * rows * length``."""

    replay_s: Mapping[Shape, float]
    eager_base_s: float
    eager_token_s: float
    measured: bool = False  # False: the default table's figures, not this device's

    def replay(self, shape: Shape) -> float:
        return self.replay_s[shape]

    def eager(self, rows: int, length: int) -> float:
        return self.eager_base_s + self.eager_token_s * rows * length

    def eager_many(self, rows: np.ndarray, length: np.ndarray) -> np.ndarray:
        """``eager`` element-wise (broadcast), for the planner."""
        return self.eager_base_s + self.eager_token_s * rows * length

    def summary(self) -> dict[str, Any]:
        """A few figures for the start-up log line."""
        shapes = sorted(self.replay_s, key=lambda s: (s[0] * s[1], s[1]))
        out: dict[str, Any] = {
            "measured": self.measured,
            "eager_base_ms": round(1000 * self.eager_base_s, 3),
            "eager_ms_per_1k_tokens": round(1e6 * self.eager_token_s, 3),
        }
        if shapes:
            small, large = shapes[0], shapes[-1]
            out["replay_ms"] = {
                f"{b}x{n}": round(1000 * self.replay_s[(b, n)], 3) for b, n in (small, large)
            }
            # how many buckets replay cheaper than an eager call of their own full shape
            out["replay_cheaper_than_eager"] = sum(
                self.replay_s[s] <= self.eager(*s) for s in shapes
            )
        return out


def default_table(shapes: Iterable[Shape]) -> CostTable:
    """The stand-in cost table: launch cost plus GPU time per padded token, the same per token
    for replay and eager (the kernels are the same; only the host's launches differ)."""
    replay = {s: DEFAULT_REPLAY_BASE_S + DEFAULT_TOKEN_S * s[0] * s[1] for s in shapes}
    return CostTable(replay, DEFAULT_EAGER_BASE_S, DEFAULT_TOKEN_S)


@dataclass(frozen=True)
class Sample:
    """One measured call set: its shape, and the median seconds of replay or eager."""

    shape: Shape
    seconds: float
    path: str  # "graph" or "eager"


def from_samples(shapes: Sequence[Shape], samples: Sequence[Sample]) -> CostTable:
    """A measured table: replay seconds as measured where measured, elsewhere from a least-squares
    line over tokens through the measured replays; eager as the line through the measured eager
    samples (one sample: the replay line's slope from there). Every figure is at least 0 and the
    eager line never falls with tokens. Raises ValueError without a graph and an eager sample."""
    replays = [s for s in samples if s.path == "graph"]
    eagers = sorted((s for s in samples if s.path == "eager"), key=lambda s: _tokens(s.shape))
    if not replays or not eagers:
        raise ValueError("a measured cost table needs a replay and an eager sample")
    base, slope = _line([(_tokens(s.shape), s.seconds) for s in replays])
    measured = {s.shape: s.seconds for s in replays}
    replay_s = {s: measured.get(s, base + slope * _tokens(s)) for s in shapes}
    first, last = eagers[0], eagers[-1]
    if _tokens(last.shape) > _tokens(first.shape):
        eager_slope = (last.seconds - first.seconds) / (_tokens(last.shape) - _tokens(first.shape))
    else:
        eager_slope = slope
    eager_slope = max(eager_slope, 0.0)
    eager_base = max(first.seconds - eager_slope * _tokens(first.shape), 0.0)
    return CostTable(replay_s, eager_base, eager_slope, measured=True)


def choose(
    rows: int, length: int, available: Iterable[Shape], costs: CostTable | None
) -> tuple[Shape | None, float]:
    """(the bucket a ``rows x length`` call replays, or None to run eager; that choice's cost).

    Among the buckets that hold the call, the one that replays cheapest (ties: fewer tokens); it
    is taken unless eager costs less for the call's own shape (a tie replays: a replay holds the
    host for less of its time). ``costs`` None: ``default_table``."""
    fits = [s for s in available if s[0] >= rows and s[1] >= length]
    table = costs if costs is not None else default_table(fits)
    eager = table.eager(rows, length)
    if not fits:
        return None, eager
    best = min(fits, key=lambda s: (table.replay(s), s[0] * s[1], s[1]))
    replay = table.replay(best)
    return (best, replay) if replay <= eager else (None, eager)


def _tokens(shape: Shape) -> int:
    return shape[0] * shape[1]


def _line(points: Sequence[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares ``(base, slope)`` of seconds over tokens, both clamped at 0."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / var if var else 0.0
    slope = max(slope, 0.0)
    return max(mean_y - slope * mean_x, 0.0), slope
