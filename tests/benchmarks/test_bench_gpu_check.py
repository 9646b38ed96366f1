"""The GPU check's own code, run on the CPU with the tiny stand-ins (no GPU result is made)."""

import json
import subprocess
import sys


def test_gpu_check_refuses_without_cuda_unless_asked(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "solution.benchmarks.gpu_check", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2 and "no CUDA device" in run.stderr
    assert not any(tmp_path.iterdir())  # nothing written


def test_gpu_check_smoke_on_cpu(tmp_path, standins_tiny):
    argv = [
        sys.executable,
        "-m",
        "solution.benchmarks.gpu_check",
        "--allow-cpu",
        "--as-is",
        "--standins",
        str(standins_tiny),
        "--out",
        str(tmp_path),
        "--seconds",
        "1",
        "--users",
        "8",
        "--batch-sizes",
        "1,8",
        "--min-seconds",
        "0.2",
        "--waits",
        "0,2",
        "--texts",
        "64",
    ]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    doc = json.loads((tmp_path / "tmp" / "gpu-check-cpu-smoke.json").read_text())
    assert doc["device"].startswith("cpu (smoke test")
    assert set(doc["parity_vs_fp32"]["models"]) == {
        "cardiffnlp",
        "ivanlau",
        "svalabs",
        "EIStakovskii",
        "jy46604790",
    }
    assert doc["engine"]["saturation"]["failed"] == 0
    assert set(doc["max_wait_sweep"]) == {"rate_rps", "0", "2"}
