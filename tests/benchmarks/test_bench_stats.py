import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from solution.benchmarks.stats import Tally, cdf, distribution, latency_summary, percentile


@given(
    st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=200),
    st.floats(0, 100),
)
def test_percentile_matches_numpy_linear(values, q):
    ordered = sorted(values)
    assert percentile(ordered, q) == pytest.approx(np.percentile(ordered, q), rel=1e-9, abs=1e-9)


def test_percentile_edges():
    assert math.isnan(percentile([], 50))
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0) == 1.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 100) == 4.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_latency_summary_is_in_milliseconds():
    s = latency_summary([0.001 * i for i in range(1, 101)])  # 1..100 ms, unsorted order is fine
    assert s["p50"] == pytest.approx(50.5)
    assert s["p99"] == pytest.approx(99.01)
    assert s["max"] == pytest.approx(100.0)
    assert s["mean"] == pytest.approx(50.5)
    assert all(math.isnan(v) for v in latency_summary([]).values())


def test_cdf_and_distribution():
    points = cdf([0.003, 0.001, 0.002], points=3)
    assert points == pytest.approx([1.0, 2.0, 3.0])
    d = distribution([1, 2, 3, 4, 100])
    assert d["mean"] == 22 and d["p50"] == 3 and d["max"] == 100


def test_tally_counts_errors_by_kind_and_throughput_in_its_window():
    t = Tally()
    for i in range(10):
        t.ok(0.01, now_s=float(i))  # one answer per second, at 0..9 s
    t.error("http_503", "queue full")
    t.error("http_503")
    t.error("timeout")
    t.duration_s, t.window = 12.0, (2.0, 6.0)
    s = t.summary()
    assert s["ok"] == 10 and s["failed"] == 3
    assert s["errors"] == {"http_503": 2, "timeout": 1}
    assert s["throughput_rps"] == pytest.approx(5 / 4)  # answers at 2, 3, 4, 5, 6 s
    assert s["error_samples"][0] == "http_503: queue full"
