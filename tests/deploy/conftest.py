"""Session fixtures for the deployment checks: the deploy-tools venv and the rendered chart.

The chart is rendered once per session for the defaults and each solution/helm/envs/*.yaml, for
the oldest and newest Kubernetes versions the chart supports; the venv is made on first use.
"""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from deploy_support import (
    ENV_FILES,
    ENVS,
    KUBE_VERSIONS,
    ROOT,
    VENV,
    Manifests,
    load_folder,
    render,
)


@pytest.fixture(scope="session")
def tools() -> Path:
    """The deploy-tools venv's bin folder (helm-sdkpy, kubernetes-validate, hadolint)."""
    subprocess.run([str(ROOT / "scripts" / "helm_venv.sh"), str(VENV)], check=True, timeout=600)
    return VENV / "bin"


@pytest.fixture(scope="session")
def rendered_dirs(tools: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[tuple, Path]:
    """(env, kube version) -> folder with one YAML file per rendered object."""
    base = tmp_path_factory.mktemp("rendered")
    jobs = {(env, kv): base / f"{env}-{kv}" for env in ENVS for kv in KUBE_VERSIONS}

    def run(key: tuple[str, str]):
        env, kv = key
        return render(jobs[key], [ENV_FILES[env]] if env in ENV_FILES else [], kv)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for key, done in zip(jobs, pool.map(run, jobs), strict=True):
            assert done.returncode == 0, f"render {key} failed:\n{done.stderr}"
    return jobs


@pytest.fixture(scope="session")
def rendered(rendered_dirs: dict[tuple, Path]) -> dict[str, Manifests]:
    """env -> objects rendered for the oldest supported Kubernetes version."""
    return {env: load_folder(rendered_dirs[(env, KUBE_VERSIONS[0])]) for env in ENVS}
