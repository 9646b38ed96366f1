"""The GPU check and its device run, smoke-tested on the CPU with the tiny stand-ins (no GPU
result is made), with the packages the GPU machine lacks made unimportable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "solution" / "benchmarks" / "gpu_run.sh"
KEYS = {"cardiffnlp", "ivanlau", "svalabs", "EIStakovskii", "jy46604790"}

# This project's runtime, dev and bench packages that the GPU machine's image does not hold
# (/work/.library/device/KINDS.md, "Python packages already there", read 2026-11-17).
ABSENT_ON_GPU_MACHINE = (
    "orjson",
    "httptools",
    "uvicorn",
    "grpc_health",
    "grpc_reflection",
    "pydantic",
    "pydantic_core",
    "pytest_asyncio",
)
BLOCKER = f"""
import sys

ABSENT = {set(ABSENT_ON_GPU_MACHINE)!r}


class Absent:
    def __init__(self, finders):
        self.finders = finders

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ABSENT:
            return None
        for finder in self.finders:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find else None
            if spec is not None:
                return spec
        return None

    def find_distributions(self, *args, **kwargs):  # importlib.metadata asks the same finders
        for finder in self.finders:
            yield from getattr(finder, "find_distributions", lambda *a, **k: ())(*args, **kwargs)

    def invalidate_caches(self):
        for finder in self.finders:
            getattr(finder, "invalidate_caches", lambda: None)()


sys.meta_path[:] = [Absent(list(sys.meta_path))]
"""


@pytest.fixture
def gpu_machine_env(tmp_path: Path) -> dict[str, str]:
    """The environment of the device run: python3's packages minus what that image lacks."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(
        PYTHON=sys.executable,
        PYTHONPATH=f"{site}{os.pathsep}{ROOT}",
        OMP_NUM_THREADS="1",  # the 2 shared CI cores: a second thread only spins on a barrier
    )
    return env


def run_script(
    env: dict[str, str], out: Path, *args: str, timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        cwd=ROOT,
        env={**env, "OUT": str(out)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_blocker_really_hides_those_packages(gpu_machine_env):
    run = subprocess.run(
        [sys.executable, "-c", "import orjson"], env=gpu_machine_env, capture_output=True
    )
    assert run.returncode != 0 and b"No module named 'orjson'" in run.stderr


def test_gpu_check_stops_at_once_naming_what_is_missing(tmp_path, gpu_machine_env, standins_tiny):
    out = tmp_path / "out"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "solution.benchmarks.gpu_check",
            "--standins",
            str(standins_tiny),
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env=gpu_machine_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2 and "a CUDA device" in run.stderr
    doc = json.loads((out / "gpu-check.json").read_text())
    assert doc["missing"] == ["a CUDA device"] and doc["checks_passed"] is False
    assert "steps" in doc and not doc["steps"]  # nothing measured


def test_the_device_run_names_missing_stand_ins(tmp_path, gpu_machine_env):
    env = {**gpu_machine_env, "STANDINS": str(tmp_path / "nowhere")}
    run = run_script(env, tmp_path / "out", "--allow-cpu", timeout=60)
    assert run.returncode == 2
    assert f"missing {tmp_path / 'nowhere'}/cardiffnlp" in run.stderr
    assert "--size tiny" in (tmp_path / "out" / "gpu-check.log").read_text()


def test_the_device_run_smoke_on_cpu(tmp_path, gpu_machine_env, standins_tiny):
    out = tmp_path / "out"
    # the served path has its own test (test_bench_served.py); this one runs gpu_check's part
    env = {**gpu_machine_env, "STANDINS": str(standins_tiny), "SERVED": "0", "WHEELS": "/none"}
    env["GPU_CHECK_TIMEOUT_S"] = "280"  # the GPU's 150 s is minutes of work on 2 shared cores
    args = [
        "--allow-cpu",
        "--as-is",
        "--seconds",
        "0.5",
        "--users",
        "8",
        "--limit-rows",
        "1,4",
        "--min-seconds",
        "0.1",
        "--waits",
        "0",
        "--texts",
        "64",
        "--parity-texts",
        "8",
        "--timing-batches",
        "1,4",
        "--graph-rows",
        "4",
        "--graph-length",
        "128",  # the load texts' ~120 tokens fit: the timing table's graph rows run in graphs
    ]
    run = run_script(env, out, *args)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert {p.name for p in out.iterdir()} >= {
        "gpu-check-cpu-smoke.json",
        "gpu-check-cpu-smoke.md",
        "gpu-check.log",
    }
    doc = json.loads((out / "gpu-check-cpu-smoke.json").read_text())
    assert doc["smoke_test"] is True and doc["device"].startswith("cpu (smoke test")
    assert doc["hf_hub_offline"] == "1"
    statuses = {name: step["status"] for name, step in doc["steps"].items()}
    assert statuses.pop("sync_debug") == "skipped"  # needs CUDA
    assert set(statuses.values()) == {"ok"}, statuses
    assert set(statuses) >= {
        "parity",
        "capture",
        "graphs_vs_eager",
        "timing",
        "limit",
        "engine",
        "winner",
        "max_wait_sweep",
    }
    parity = doc["steps"]["parity"]["comparisons"]
    assert set(parity) == {"float32 eager", "float32 graphs", "bfloat16 eager", "bfloat16 graphs"}
    assert all(set(per_model) == KEYS for per_model in parity.values())
    assert doc["steps"]["capture"]["graphs_per_model"] > 0
    assert doc["checks_passed"] is True and doc["checks"]
    assert set(doc["targets"]) >= {"in-process engine / in-process winner-style peer"}
    timing = {(r["batch"], r["path"]): r for r in doc["steps"]["timing"]["rows"]}
    assert timing[(1, "graphs")]["graph_share"] == 1.0  # counted replays, every forward
    assert timing[(4, "eager, five streams")]["graph_share"] == 0.0
    limit = doc["steps"]["limit"]
    assert [r["rows"] for r in limit["runs"]] == [1, 4] and limit["best"]["texts_per_s"] > 0
    assert limit["one_replay_ms"] > 0
    assert limit["tokens_per_text"]["cardiffnlp"] > 100  # the load's texts, not the corpus's
    assert "smoke test, not a GPU result" in (out / "gpu-check-cpu-smoke.md").read_text()
