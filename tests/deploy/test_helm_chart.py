"""The Helm chart: lint + render by Helm itself (fixtures), schema-valid manifests, and the
properties the service relies on (ports, probes, drain timing, GPU, volumes, scaling objects)."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import typing
from pathlib import Path

import pytest
from deploy_support import (
    ENVS,
    KUBE_VERSIONS,
    ROOT,
    Manifests,
    deployment,
    find,
    load_folder,
    render,
    server_container,
    validate_strict,
    values_of,
)

from solution.server import config

HTTP_ENVS = [env for env in ENVS if values_of(env)["probes"]["type"] == "http"]
GPU_ENVS = [env for env in ENVS if values_of(env)["gpu"]["count"] > 0]


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_manifests_pass_kubernetes_validate_strict(
    tools: Path, rendered_dirs: dict[tuple, Path], kube_version: str
) -> None:
    folders = [folder for (_, kv), folder in rendered_dirs.items() if kv == kube_version]
    lines = validate_strict(tools, folders, kube_version)
    # Only the ServiceMonitor (a custom resource) has no schema there; it is checked below.
    unchecked = [line for line in lines if not line.startswith("INFO")]
    assert all("ServiceMonitor" in line for line in unchecked), unchecked


def test_default_render_holds_the_core_objects(rendered: dict[str, Manifests]) -> None:
    kinds = sorted(kind for kind, _ in rendered["default"])
    assert kinds == ["ConfigMap", "Deployment", "PodDisruptionBudget", "Service"]


def test_example_renders_every_optional_object(rendered: dict[str, Manifests]) -> None:
    kinds = sorted(kind for kind, _ in rendered["example"])
    assert kinds == [
        "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PersistentVolumeClaim",
        "PodDisruptionBudget", "Service", "Service", "ServiceMonitor",
    ]  # fmt: skip


def test_documented_command_prints_the_default_manifests(tools: Path) -> None:
    done = render(None, [])
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\nkind: Deployment\n") == 1


@pytest.mark.parametrize("env", ENVS)
def test_rendered_env_is_accepted_by_the_service_config(
    rendered: dict[str, Manifests], env: str, tmp_path: Path
) -> None:
    """The Deployment's CLS_* variables load through solution/server/config.py itself."""
    objects = rendered[env]
    environ = {e["name"]: e["value"] for e in server_container(objects)["env"] if "value" in e}
    # The ConfigMap is mounted in the pod; here its content goes to a local file.
    (cm,) = find(objects, "ConfigMap")
    model_config = tmp_path / "models.json"
    model_config.write_text(cm["data"]["models.json"])
    settings = config.load([], {**environ, "CLS_MODEL_CONFIG": str(model_config)})

    ports = {p["name"]: p["containerPort"] for p in server_container(objects)["ports"]}
    assert ports == {"http": settings.http_port, "grpc": settings.grpc_port}
    mounts = {m["name"]: m["mountPath"] for m in server_container(objects)["volumeMounts"]}
    assert mounts["model-config"] == str(Path(environ["CLS_MODEL_CONFIG"]).parent)
    if values_of(env)["models"]["storage"] != "image":
        assert mounts["models"] == settings.models_dir


def test_example_sets_every_service_setting(rendered: dict[str, Manifests]) -> None:
    fields = {f.name for f in dataclasses.fields(config.Settings)}
    example = values_of("example")["config"]
    assert sorted(fields - set(example)) == [], "add these to solution/helm/envs/example.yaml"
    assert sorted(set(example) - fields) == [], "config.py has no such settings"
    env = {e["name"]: e["value"] for e in server_container(rendered["example"])["env"]}
    assert {config.env_name(name) for name in fields} <= set(env)


def test_schema_types_every_service_setting() -> None:
    schema = json.loads((ROOT / "solution" / "helm" / "values.schema.json").read_text())
    props = schema["properties"]["config"]["properties"]
    json_type = {str: "string", int: "integer", float: "number", bool: "boolean"}
    hints = typing.get_type_hints(config.Settings)
    expected = {f.name: json_type[hints[f.name]] for f in dataclasses.fields(config.Settings)}
    assert {name: spec["type"] for name, spec in props.items()} == expected


def test_default_model_list_is_the_services(rendered: dict[str, Manifests]) -> None:
    (cm,) = find(rendered["default"], "ConfigMap")
    shipped = json.loads((ROOT / "solution" / "server" / "models.json").read_text())
    shipped = {k: v for k, v in shipped.items() if not k.startswith("_")}  # drop comments
    assert json.loads(cm["data"]["models.json"]) == shipped


@pytest.mark.parametrize("env", ENVS)
def test_gpu_is_requested_and_limited(rendered: dict[str, Manifests], env: str) -> None:
    resources = server_container(rendered[env])["resources"]
    gpus = [resources.get(part, {}).get("nvidia.com/gpu") for part in ("requests", "limits")]
    assert gpus == ([1, 1] if env in GPU_ENVS else [None, None])


@pytest.mark.parametrize("env", HTTP_ENVS)
def test_http_probes(rendered: dict[str, Manifests], env: str) -> None:
    container = server_container(rendered[env])
    paths = {
        probe: (container[probe]["httpGet"]["path"], container[probe]["httpGet"]["port"])
        for probe in ("startupProbe", "readinessProbe", "livenessProbe")
    }
    assert paths == {
        "startupProbe": ("/health", "http"),
        "readinessProbe": ("/ready", "http"),
        "livenessProbe": ("/health", "http"),
    }


def test_grpc_probes(rendered: dict[str, Manifests]) -> None:
    container = server_container(rendered["example"])
    grpc_port = values_of("example")["config"]["grpc_port"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": grpc_port}


@pytest.mark.parametrize("env", ENVS)
def test_drain_fits_in_the_termination_grace(rendered: dict[str, Manifests], env: str) -> None:
    pod = deployment(rendered[env])["spec"]["template"]["spec"]
    container = server_container(rendered[env])
    env_vars = {e["name"]: e.get("value") for e in container["env"]}
    drain_s = float(env_vars.get("CLS_SHUTDOWN_GRACE_S") or config.Settings.shutdown_grace_s)
    sleep_s = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert sleep_s > 0
    assert pod["terminationGracePeriodSeconds"] > sleep_s + drain_s
    # A draining pod fails readiness at once but must not fail liveness before it exits.
    live = container["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] > drain_s


@pytest.mark.parametrize("env", ENVS)
def test_volumes(rendered: dict[str, Manifests], env: str) -> None:
    pod = deployment(rendered[env])["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in server_container(rendered[env])["volumeMounts"]}
    assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"
    assert mounts["dshm"] == "/dev/shm"
    assert mounts["tmp"] == "/tmp"  # the root filesystem is read-only
    storage = values_of(env)["models"]["storage"]
    if storage == "pvc":
        (pvc,) = find(rendered[env], "PersistentVolumeClaim")
        assert volumes["models"]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    elif storage == "emptyDir":
        assert "emptyDir" in volumes["models"]


@pytest.mark.parametrize("env", ENVS)
def test_service_ports(rendered: dict[str, Manifests], env: str) -> None:
    (svc,) = [s for s in find(rendered[env], "Service") if s["spec"].get("clusterIP") != "None"]
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in svc["spec"]["ports"]}
    assert ports == {"http": (80, "http"), "grpc": (values_of(env)["service"]["grpcPort"], "grpc")}
    labels = deployment(rendered[env])["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()


def test_headless_service_for_grpc_client_side_balancing(rendered: dict[str, Manifests]) -> None:
    (headless,) = [
        s for s in find(rendered["example"], "Service") if s["spec"].get("clusterIP") == "None"
    ]
    assert headless["spec"]["publishNotReadyAddresses"] is False
    assert {p["name"] for p in headless["spec"]["ports"]} == {"grpc", "http"}


def test_autoscaler(rendered: dict[str, Manifests]) -> None:
    (hpa,) = find(rendered["example"], "HorizontalPodAutoscaler")
    dep = deployment(rendered["example"])
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    assert "replicas" not in dep["spec"]  # the HPA owns the count
    assert {m["type"] for m in hpa["spec"]["metrics"]} == {"Resource", "Pods"}


def test_service_monitor_scrapes_each_pod_once(rendered: dict[str, Manifests]) -> None:
    (monitor,) = find(rendered["example"], "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selector = monitor["spec"]["selector"]["matchLabels"].items()
    picked = [
        s
        for s in find(rendered["example"], "Service")
        if selector <= s["metadata"]["labels"].items()
    ]
    assert [s["spec"].get("clusterIP") for s in picked] == [None]  # the main Service only
    assert (
        monitor["spec"]["endpoints"][0] | {"port": "http", "path": "/metrics"}
        == (monitor["spec"]["endpoints"][0])
    )


def test_pod_disruption_budget_allows_a_drain(rendered: dict[str, Manifests]) -> None:
    (pdb,) = find(rendered["default"], "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ("config: {max_batch_token: 1}", "max_batch_token"),  # a typo the schema catches
        ("terminationGracePeriodSeconds: 20", "must exceed"),
        ("config: {enable_http: false}", "probes.type=grpc"),
        ("models: {storage: s3}", "storage"),
    ],
)
def test_bad_values_fail_the_render(tools: Path, tmp_path: Path, values: str, message: str) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(values + "\n")
    done = render(None, [path])
    assert done.returncode != 0
    assert message in done.stderr


def test_grace_default_follows_shutdown_grace(tools: Path, tmp_path: Path) -> None:
    path = tmp_path / "values.yaml"
    path.write_text("config: {shutdown_grace_s: 60.5}\n")
    done = render(tmp_path / "out", [path])
    assert done.returncode == 0, done.stderr
    grace = (tmp_path / "out" / "deployment-tweet-classifier.yaml").read_text()
    assert f"terminationGracePeriodSeconds: {5 + math.ceil(60.5) + 10}\n" in grace


def test_baked_models_variant(tools: Path, tmp_path: Path) -> None:
    """Weights in the image and the service's own model list: nothing to fetch or mount."""
    path = tmp_path / "values.yaml"
    path.write_text(
        "models: {storage: image}\nmodelConfig: {enabled: false}\nconfig: {model_config: null}\n"
    )
    done = render(tmp_path / "out", [path])
    assert done.returncode == 0, done.stderr
    objects = load_folder(tmp_path / "out")
    assert sorted(kind for kind, _ in objects) == ["Deployment", "PodDisruptionBudget", "Service"]
    pod = deployment(objects)["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    assert {v["name"] for v in pod["volumes"]} == {"dshm", "tmp"}
    env = {e["name"]: e.get("value") for e in server_container(objects)["env"]}
    assert env["CLS_MODELS_DIR"] == "/models" and "CLS_MODEL_CONFIG" not in env
    files = [str(p) for p in (tmp_path / "out").glob("*.yaml")]
    validate = [str(tools / "kubernetes-validate"), "--strict", "-k", KUBE_VERSIONS[0], *files]
    checked = subprocess.run(validate, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout
