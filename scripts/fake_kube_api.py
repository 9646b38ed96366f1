"""A minimal, stateless fake Kubernetes API server, just enough for ``helm install`` to render.

helm-sdkpy has no ``helm template`` mode: Install always talks to a cluster first. This server
answers discovery, says every object is absent (404), lists are empty, and echoes what Helm
creates (201). Nothing is stored, so every render starts from an empty "cluster". It advertises
only the API groups the chart uses, so ``.Capabilities.APIVersions`` is what a cluster with the
Prometheus operator would report. Standard library only; runs in a daemon thread.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# group/version -> [(plural, kind, namespaced)]: the kinds the chart renders, plus Secrets (Helm's
# release storage), Pods and Jobs (hooks) and Namespaces.
RESOURCES: dict[str, list[tuple[str, str, bool]]] = {
    "v1": [
        ("configmaps", "ConfigMap", True),
        ("namespaces", "Namespace", False),
        ("persistentvolumeclaims", "PersistentVolumeClaim", True),
        ("pods", "Pod", True),
        ("secrets", "Secret", True),
        ("serviceaccounts", "ServiceAccount", True),
        ("services", "Service", True),
    ],
    "apps/v1": [("deployments", "Deployment", True)],
    "autoscaling/v2": [("horizontalpodautoscalers", "HorizontalPodAutoscaler", True)],
    "batch/v1": [("jobs", "Job", True)],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget", True)],
    "monitoring.coreos.com/v1": [("servicemonitors", "ServiceMonitor", True)],
}
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
# /api/v1/namespaces/NS/PLURAL[/NAME] or /apis/GROUP/VERSION/namespaces/NS/PLURAL[/NAME]
OBJECT_PATH = re.compile(r"^/apis?/(?:[^/]+/)?v[^/]+(?:/namespaces/[^/]+)?/([^/]+)(?:/([^/]+))?")


def _resource_list(group_version: str) -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": [
            {
                "name": plural,
                "singularName": kind.lower(),
                "namespaced": namespaced,
                "kind": kind,
                "verbs": VERBS,
            }
            for plural, kind, namespaced in RESOURCES[group_version]
        ],
    }


def _group_list() -> dict[str, Any]:
    groups = []
    for gv in RESOURCES:
        if "/" not in gv:
            continue
        name, version = gv.split("/")
        entry = {"groupVersion": gv, "version": version}
        groups.append({"name": name, "versions": [entry], "preferredVersion": entry})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _completed(obj: dict[str, Any]) -> dict[str, Any]:
    """Hooks wait for Jobs and Pods: report them finished so a render never blocks."""
    kind = obj.get("kind")
    if kind == "Job":
        obj["status"] = {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
    elif kind == "Pod":
        obj["status"] = {"phase": "Succeeded"}
    return obj


class _Handler(BaseHTTPRequestHandler):
    server_version = "fake-kube-api"
    kube_version = "1.30.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test and render output clean

    def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _not_found(self) -> None:
        self._send(
            404,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "reason": "NotFound",
                "code": 404,
                "message": "not found",
            },
        )

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        major, minor, _ = self.kube_version.split(".")
        if path == "/version":
            self._send(
                200,
                {
                    "major": major,
                    "minor": minor,
                    "gitVersion": "v" + self.kube_version,
                    "platform": "linux/amd64",
                },
            )
        elif path == "/api":
            self._send(200, {"kind": "APIVersions", "versions": ["v1"]})
        elif path == "/apis":
            self._send(200, _group_list())
        elif path == "/openapi/v2":
            # An empty document; with application/json here client-go fails to parse it.
            self._send(200, b"", "application/octet-stream")
        elif path.removeprefix("/api/").removeprefix("/apis/") in RESOURCES:
            self._send(200, _resource_list(path.removeprefix("/api/").removeprefix("/apis/")))
        elif (match := OBJECT_PATH.match(path)) and match.group(2) is None:
            self._send(200, {"kind": "List", "apiVersion": "v1", "metadata": {}, "items": []})
        else:
            self._not_found()

    def _echo(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        content_type = self.headers.get("Content-Type") or "application/json"
        if "json" not in content_type:  # client-go sends core types (Secrets) as protobuf
            self._send(201, raw, content_type)
            return
        obj = json.loads(raw or b"{}")
        self._send(201, _completed(obj) if isinstance(obj, dict) else obj)

    do_POST = do_PUT = do_PATCH = _echo

    def do_DELETE(self) -> None:
        self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})


class FakeKubeAPI:
    """``with FakeKubeAPI("1.30.0") as api: api.kubeconfig()`` serves on 127.0.0.1, a free port."""

    def __init__(self, kube_version: str = "1.30.0") -> None:
        handler = type("Handler", (_Handler,), {"kube_version": kube_version})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def kubeconfig(self, namespace: str = "default") -> str:
        """A kubeconfig (YAML text: helm-sdkpy takes it as such) pointing at this server."""
        return (
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\n"
            f"clusters:\n- name: fake\n  cluster: {{server: '{self.url}'}}\n"
            "users:\n- name: fake\n  user: {}\n"
            "contexts:\n- name: fake\n"
            f"  context: {{cluster: fake, user: fake, namespace: '{namespace}'}}\n"
        )

    def __enter__(self) -> FakeKubeAPI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
