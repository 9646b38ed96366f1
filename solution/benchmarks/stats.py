"""Percentiles and run summaries, pure Python so the tests can check them against numpy."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

QUANTILES = (50, 90, 95, 99)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of already sorted values, interpolated linearly between
    the two nearest ranks (numpy's default method). NaN for no values."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    n = len(sorted_values)
    if n == 0:
        return math.nan
    position = (n - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, n - 1)
    fraction = position - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


def latency_summary(seconds: Iterable[float]) -> dict[str, float]:
    """p50/p90/p95/p99/max/mean in milliseconds (NaN when there were no answers)."""
    values = sorted(seconds)
    out = {f"p{q}": 1000.0 * percentile(values, q) for q in QUANTILES}
    out["max"] = 1000.0 * values[-1] if values else math.nan
    out["mean"] = 1000.0 * sum(values) / len(values) if values else math.nan
    return out


def cdf(seconds: Iterable[float], points: int = 101) -> list[float]:
    """Latency in ms at evenly spaced percentiles 0..100, for plotting a CDF."""
    values = sorted(seconds)
    if not values:
        return []
    return [1000.0 * percentile(values, 100.0 * i / (points - 1)) for i in range(points)]


def distribution(values: Iterable[float]) -> dict[str, float]:
    """Mean, p50, p95 and max of plain numbers (tokens per text, batch sizes)."""
    ordered = sorted(values)
    if not ordered:
        return {"mean": math.nan, "p50": math.nan, "p95": math.nan, "max": math.nan}
    return {
        "mean": sum(ordered) / len(ordered),
        "p50": percentile(ordered, 50),
        "p95": percentile(ordered, 95),
        "max": ordered[-1],
    }


@dataclass
class Tally:
    """What one run observed; filled by the load loops, summarised at the end.

    ``latencies`` hold the seconds of answered requests that passed the checks; ``errors`` count
    the others by kind (``http_503``, ``timeout``, ``check_label``...); ``unsent`` counts arrivals
    an open loop could not send because every virtual user was busy (k6's dropped iterations).
    Throughput counts the answers that completed inside ``window`` (seconds since the start): a
    closed loop's starts after its warm-up and ends with its last answer.
    """

    latencies: list[float] = field(default_factory=list)
    ok_at: list[float] = field(default_factory=list)  # seconds since start, per passing answer
    errors: Counter[str] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    unsent: int = 0
    sent: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    duration_s: float = 0.0
    window: tuple[float, float] | None = None

    def ok(self, latency_s: float, now_s: float) -> None:
        self.latencies.append(latency_s)
        self.ok_at.append(now_s)

    def error(self, kind: str, detail: str = "") -> None:
        self.errors[kind] += 1
        if len(self.error_samples) < 10:
            self.error_samples.append(f"{kind}: {detail}"[:300] if detail else kind)

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    def throughput(self) -> float:
        start, end = self.window or (0.0, self.duration_s)
        if end <= start:
            return math.nan
        return sum(1 for t in self.ok_at if start <= t <= end) / (end - start)

    def summary(self) -> dict[str, Any]:
        return {
            "duration_s": round(self.duration_s, 3),
            "sent": self.sent,
            "ok": len(self.latencies),
            "failed": self.failed,
            "unsent": self.unsent,
            "errors": dict(sorted(self.errors.items())),
            "error_samples": list(self.error_samples),
            "throughput_rps": self.throughput(),
            "throughput_window_s": list(self.window or (0.0, self.duration_s)),
            "max_in_flight": self.max_in_flight,
            "latency_ms": latency_summary(self.latencies),
            "cdf_ms": cdf(self.latencies),
        }


def format_summary(name: str, s: dict[str, Any]) -> str:
    """One human line per run."""
    lat = s["latency_ms"]
    errors = ", ".join(f"{k}={v}" for k, v in s["errors"].items()) or "none"
    return (
        f"{name}: {s['ok']} ok, {s['throughput_rps']:.2f} req/s over {s['duration_s']:.1f}s | "
        f"latency ms p50 {lat['p50']:.1f} p90 {lat['p90']:.1f} p95 {lat['p95']:.1f} "
        f"p99 {lat['p99']:.1f} max {lat['max']:.1f} | errors: {errors} | unsent: {s['unsent']}"
    )
