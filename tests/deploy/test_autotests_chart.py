"""The autotests chart (autotests/helm): lint + render by Helm itself, schema-valid manifests,
and the Job the runner relies on: its command and env from values, one run without retries,
a non-root read-only pod, a label-safe participant name, a default aimed at the service chart."""

from __future__ import annotations

import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import (
    CHART,
    KUBE_VERSIONS,
    ROOT,
    Manifests,
    find,
    load_folder,
    render,
    validate_strict,
)

AUTOTESTS_CHART = ROOT / "autotests" / "helm"
RELEASE = "autotests"
DEFAULTS = yaml.safe_load((AUTOTESTS_CHART / "values.yaml").read_text())
# What `--set PARTICIPANT_NAME=... --set api_host=... --set scale=0.25` gives Helm: --set does not
# parse floats, so scale arrives as a string.
CUSTOM = {
    "PARTICIPANT_NAME": "  Émile O'Brien / team#7 !! " + "x" * 60,
    "api_host": "http://t4-tweet-classifier.bench.svc:80",
    "scale": "0.25",
}
CASES = {"default": {}, "custom": CUSTOM}
REFERENCE_SCENARIOS_S = 8.5 * 60
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def render_autotests(
    out: Path | None, values: dict[str, Any], folder: Path, kube_version: str = KUBE_VERSIONS[0]
) -> subprocess.CompletedProcess[str]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    options = ["--chart", str(AUTOTESTS_CHART), "--release", RELEASE]
    return render(out, [path], kube_version, options)


@pytest.fixture(scope="module")
def rendered_dirs(tools: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[tuple, Path]:
    """(case, kube version) -> folder with the rendered objects; every case at every version."""
    base = tmp_path_factory.mktemp("autotests-rendered")
    jobs = {(case, kv): base / f"{case}-{kv}" for case in CASES for kv in KUBE_VERSIONS}

    def run(key: tuple[str, str]) -> subprocess.CompletedProcess[str]:
        return render_autotests(jobs[key] / "out", CASES[key[0]], jobs[key], key[1])

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        for key, done in zip(jobs, pool.map(run, jobs), strict=True):
            assert done.returncode == 0, f"render {key} failed:\n{done.stderr}"
    return {key: folder / "out" for key, folder in jobs.items()}


@pytest.fixture(scope="module")
def rendered(rendered_dirs: dict[tuple, Path]) -> dict[str, Manifests]:
    return {case: load_folder(rendered_dirs[(case, KUBE_VERSIONS[0])]) for case in CASES}


def job(objects: Manifests) -> dict[str, Any]:
    (the_job,) = find(objects, "Job")
    return the_job


def container(objects: Manifests) -> dict[str, Any]:
    (the_container,) = job(objects)["spec"]["template"]["spec"]["containers"]
    return the_container


def values_of(case: str) -> dict[str, Any]:
    return DEFAULTS | CASES[case]


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_manifests_pass_kubernetes_validate_strict(
    tools: Path, rendered_dirs: dict[tuple, Path], kube_version: str
) -> None:
    folders = [folder for (_, kv), folder in rendered_dirs.items() if kv == kube_version]
    lines = validate_strict(tools, folders, kube_version)
    assert all(line.startswith("INFO") for line in lines), lines


@pytest.mark.parametrize("case", CASES)
def test_renders_only_the_job(rendered: dict[str, Manifests], case: str) -> None:
    assert list(rendered[case]) == [("Job", RELEASE)]


@pytest.mark.parametrize("case", CASES)
def test_command_and_env_come_from_values(rendered: dict[str, Manifests], case: str) -> None:
    values = values_of(case)
    c = container(rendered[case])
    *command, scale = c["command"]
    assert command == ["python", "-m", "autotests", "--api-host", values["api_host"], "--scale"]
    assert float(scale) == float(values["scale"])
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["API_HOST"] == values["api_host"]
    assert env["PARTICIPANT_NAME"] == values["PARTICIPANT_NAME"]


@pytest.mark.parametrize("case", CASES)
def test_one_run_that_fits_the_deadline(rendered: dict[str, Manifests], case: str) -> None:
    spec = job(rendered[case])["spec"]
    assert spec["backoffLimit"] == 0  # a failed run is a result: never load the service again
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert spec["ttlSecondsAfterFinished"] > 0
    # The scenarios stretched by scale, with at least 5 min for pull, startup and the report.
    scenarios_s = REFERENCE_SCENARIOS_S * float(values_of(case)["scale"])
    assert scenarios_s + 300 <= spec["activeDeadlineSeconds"] <= scenarios_s + 1200


@pytest.mark.parametrize("case", CASES)
def test_non_root_read_only_pod(rendered: dict[str, Manifests], case: str) -> None:
    pod = job(rendered[case])["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["automountServiceAccountToken"] is False
    c = container(rendered[case])
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["tmp"] == "/tmp" and "emptyDir" in volumes["tmp"]


def test_participant_label_is_sanitised(rendered: dict[str, Manifests]) -> None:
    the_job = job(rendered["custom"])
    for labels in (
        the_job["metadata"]["labels"],
        the_job["spec"]["template"]["metadata"]["labels"],
    ):
        label = labels["tweet-classifier/participant"]
        assert len(label) <= 63 and LABEL_VALUE.fullmatch(label), label
        assert label.startswith("mile-O-Brien-team-7-xxx")
    annotations = the_job["metadata"]["annotations"]
    assert annotations["tweet-classifier/participant"] == CUSTOM["PARTICIPANT_NAME"]  # verbatim


def test_default_api_host_is_the_service_charts_service(tools: Path, tmp_path: Path) -> None:
    """The default targets the service chart installed as in solution/helm/README.md."""
    done = render(
        tmp_path, [], options=["--chart", str(CHART), "--release", "tc", "--namespace", "ml"]
    )
    assert done.returncode == 0, done.stderr
    (service,) = [s for s in find(load_folder(tmp_path), "Service") if "clusterIP" not in s["spec"]]
    (http,) = [p["port"] for p in service["spec"]["ports"] if p["name"] == "http"]
    assert DEFAULTS["api_host"] == f"http://{service['metadata']['name']}.ml.svc:{http}"


def test_documented_command_prints_the_job(tools: Path) -> None:
    done = render(None, [], options=["--chart", str(AUTOTESTS_CHART), "--release", RELEASE])
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\nkind: Job\n") == 1


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"api_host": None}, "missing property 'api_host'"),  # null drops the default
        ({"api_host": "tc-tweet-classifier:80"}, "/api_host"),  # no scheme
        ({"PARTICIPANT_NAME": ""}, "/PARTICIPANT_NAME"),
        ({"scale": 0}, "/scale"),
        ({"scale": "fast"}, "/scale"),
        ({"api-host": "http://tc:80"}, "'api-host' not allowed"),  # a typo
    ],
)
def test_schema_rejects_bad_values(
    tools: Path, tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    done = render_autotests(None, values, tmp_path)
    assert done.returncode != 0
    assert message in done.stderr
