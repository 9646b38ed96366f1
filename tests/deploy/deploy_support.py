"""Helpers for the deployment checks: where things are, rendering, and reading manifests.

The chart is rendered by Helm's own engine: scripts/render_chart.sh runs helm-sdkpy in the
deploy-tools venv (Python 3.12, made by scripts/helm_venv.sh) against a fake API server.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "solution" / "helm"
ENV_FILES = {p.stem: p for p in sorted((CHART / "envs").glob("*.yaml"))}
ENVS = ["default", *ENV_FILES]  # "default": the chart's values.yaml alone
# Chart.yaml's kubeVersion floor, and the newest release kubernetes-validate ships schemas for.
KUBE_VERSIONS = ("1.30.0", "1.37.0")
VENV = Path(os.environ.get("HELM_VENV", ROOT / ".venv-helm"))

Manifests = dict[tuple[str, str], dict[str, Any]]  # (kind, name) -> object


def render(
    out: Path | None,
    values: list[Path],
    kube_version: str = KUBE_VERSIONS[0],
    options: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """scripts/render_chart.sh, as a user runs it; returns the finished process.

    ``options`` go to the script as given, e.g. ``["--chart", "autotests/helm"]``."""
    cmd = [str(ROOT / "scripts" / "render_chart.sh"), "--kube-version", kube_version, *options]
    if out is not None:
        cmd += ["--out", str(out)]
    env = {**os.environ, "HELM_VENV": str(VENV)}
    return subprocess.run(
        [*cmd, *map(str, values)], capture_output=True, text=True, env=env, timeout=120
    )


def load_folder(folder: Path) -> Manifests:
    objects = {}
    for path in sorted(folder.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


def find(objects: Manifests, kind: str) -> list[dict[str, Any]]:
    return [obj for (k, _), obj in sorted(objects.items()) if k == kind]


def deployment(objects: Manifests) -> dict[str, Any]:
    (dep,) = find(objects, "Deployment")
    return dep


def server_container(objects: Manifests) -> dict[str, Any]:
    (container,) = [
        c
        for c in deployment(objects)["spec"]["template"]["spec"]["containers"]
        if c["name"] == "server"
    ]
    return container


def values_of(env: str) -> dict[str, Any]:
    """The chart defaults merged with the env file, as Helm does for maps (enough for tests)."""

    def merge(base: dict, over: dict) -> dict:
        out = dict(base)
        for key, value in over.items():
            both_maps = isinstance(value, dict) and isinstance(out.get(key), dict)
            out[key] = merge(out[key], value) if both_maps else value
        return out

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    if env in ENV_FILES:
        values = merge(values, yaml.safe_load(ENV_FILES[env].read_text()))
    return values


def validate_strict(tools: Path, folders: Sequence[Path], kube_version: str) -> list[str]:
    """``kubernetes-validate --strict`` over every manifest in ``folders``; asserts it passed and
    returns its report lines (one per file; "INFO" lines are the files with a schema)."""
    files = sorted(str(p) for folder in folders for p in folder.glob("*.yaml"))
    done = subprocess.run(
        [str(tools / "kubernetes-validate"), "--strict", "-k", kube_version, *files],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(files), lines
    return lines
