"""The served path's reading of its own figures, from a fixture JSON (no server, no k6): the
targets as ratios, counters the server does not export named as missing, the plot's data and
the PNG, and k6's summary and ``/metrics`` parsed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from solution.benchmarks.served import k6, scrape
from solution.benchmarks.served.plot import draw, series
from solution.benchmarks.served.report import Record, render

FIXTURE = Path(__file__).with_name("fixtures") / "served-fixture.json"


@pytest.fixture
def record(tmp_path: Path) -> Record:
    doc = json.loads(FIXTURE.read_text())
    r = Record(tmp_path, "served", doc)
    r.finish()
    return r


def test_targets_are_ratios_to_the_graph_limit_and_the_peer(record):
    t = record.doc["targets"]
    assert t["HTTP 256 users / graph limit"]["value"] == pytest.approx(0.8)
    assert t["HTTP 256 users / graph limit"]["met"] is True
    assert t["HTTP 256 users / winner-style peer's saturation"]["value"] == pytest.approx(4.0)
    assert t["HTTP 256 users / winner-style peer's saturation"]["met"] is False
    assert t["HTTP 256 users: p99 ms"]["met"] is False  # 400 ms
    assert t["HTTP 1 user p50 - one graph replay of the five (ms)"]["value"] == pytest.approx(1.0)
    assert t["gRPC 64-text batches / graph limit"]["value"] == pytest.approx(0.95)
    assert t["forwards from graphs under the gRPC load"]["met"] is True
    assert t["spike p99 ms"]["met"] is False  # 25 ms


def test_failed_checks_fail_the_run_and_are_named(record):
    checks = record.doc["checks"]
    assert checks["HTTP 256 users: no failed check"] == {"passed": False, "detail": "2 failed"}
    assert checks["HTTP 1 users: no failed check"]["passed"] is True
    assert checks["service drained and exited 0 on SIGTERM"]["passed"] is True
    assert record.passed() is False


def test_counters_the_server_lacks_read_as_missing_not_zero(record):
    text = render(record.doc)
    row = next(line for line in text.splitlines() if "| 256 users |" in line and "service" in line)
    assert "| missing | missing |" in row
    row_1 = next(line for line in text.splitlines() if "| 1 users |" in line and "service" in line)
    assert "| 100% | 1.50 |" in row_1


def test_the_host_floor_is_read_against_the_1_user_allowance_and_as_the_hosts_ceiling(record):
    t = record.doc["targets"]
    floor_1 = t["host floor: HTTP 1 user p50 ms, no forward"]
    assert floor_1["value"] == pytest.approx(1.2) and floor_1["met"] is True
    share = t["HTTP 256 users / host floor's ceiling"]
    assert share["value"] == pytest.approx(0.8) and share["met"] is None  # a reading, no target
    assert "HTTP 1 users / host floor's ceiling" not in t  # 1 user is latency, not a ceiling
    checks = record.doc["checks"]
    assert checks["host floor HTTP 256 users: no failed check"]["passed"] is False
    assert checks["host floor GET /health: no failed check"]["passed"] is True
    text = render(record.doc)
    assert "| HTTP | host floor | 256 users | 1000.0 | 200.00 | 300.00 | 1 |" in text
    assert "| GET /health | host floor | 1 user | 5000.0 | 0.20 | 0.50 | 0 |" in text


def test_plot_data_and_png(record, tmp_path):
    rate, p99, limit = series(record.doc)
    assert rate["service"] == [(1, 200.0), (256, 800.0)]
    assert p99["winner-style peer"] == [(1, 20.0), (256, 1200.0)]
    assert rate["host floor"] == [(1, 600.0), (256, 1000.0)]
    assert limit == 1000.0
    pytest.importorskip("matplotlib")
    png = draw(record.doc, tmp_path / "plot.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_metrics_parsed_by_path_and_missing_when_not_exported():
    text = (
        "# HELP classifier_forward_calls_total x\n"
        'classifier_forward_calls_total{path="graph"} 90.0\n'
        'classifier_forward_calls_total{path="eager"} 10.0\n'
        "classifier_gpu_busy_seconds_total 2.5\n"
    )
    after = scrape.parse(text)
    assert after == {"graph": 90.0, "eager": 10.0, "gpu_busy_s": 2.5}
    d = scrape.delta({"graph": 40.0, "eager": 10.0, "gpu_busy_s": 0.5}, after)
    assert d["graph"] == 50.0 and d["eager"] == 0.0 and d["graph_share"] == 1.0
    assert d["missing"] == []
    none = scrape.parse("classifier_requests_total 5\n")
    d = scrape.delta(none, none)
    assert d["graph"] is None and d["graph_share"] is None
    assert d["missing"] == [scrape.FORWARD_CALLS, scrape.GPU_BUSY]


def test_k6_summary_read_for_the_measured_scenario_only():
    data = {
        "metrics": {
            "http_reqs{scenario:measure}": {"values": {"count": 120, "rate": 19.0}},
            "http_reqs": {"values": {"count": 500}},  # warm-up included: not read
            "http_req_duration{scenario:measure}": {
                "values": {"med": 4.0, "p(90)": 6.0, "p(95)": 7.0, "p(99)": 9.0, "max": 12.0}
            },
            "checks{scenario:measure}": {"values": {"passes": 240, "fails": 0}},
            "http_req_failed{scenario:measure}": {"values": {"passes": 0, "fails": 120}},
        }
    }
    f = k6.figures(data, {"MODE": "closed", "SECONDS": "6"})
    assert f["requests"] == 120 and f["throughput_rps"] == pytest.approx(20.0)
    assert f["latency_ms"]["p99"] == 9.0 and f["checks_failed"] == 0 and f["http_failed"] == 0
