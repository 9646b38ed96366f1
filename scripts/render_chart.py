"""Lint and render the Helm chart with Helm's own engine (helm-sdkpy), no cluster needed.

Runs in the deploy-tools venv (Python 3.12, scripts/helm_venv.sh); use scripts/render_chart.sh,
which sets HOME before Helm's Go runtime starts. helm-sdkpy has no ``helm template``: this runs
``helm install`` against scripts/fake_kube_api.py and prints the release's manifests (hooks too).

    render_chart.py [--chart DIR] [--release NAME] [--namespace NS] [--out DIR]
                    [--kube-version 1.30.0] [values.yaml ...]

Values files merge left to right as with ``helm -f a.yaml -f b.yaml``. Without --out the
manifests go to stdout; with it, one file per object (``<kind>-<name>.yaml``) into DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import helm_sdkpy
import yaml
from fake_kube_api import FakeKubeAPI

CHART = Path(__file__).resolve().parent.parent / "solution" / "helm"
LINT_ERROR = 3  # Helm's support.ErrorSev; 1 is INFO, 2 WARNING


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep merge as ``helm -f`` does; an explicit null is kept so Helm drops that default."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def lint(config: helm_sdkpy.Configuration, chart: Path) -> list[str]:
    """Where ``helm lint`` found errors (it checks the defaults; it takes no values files).

    helm-sdkpy loses the messages' text and keeps only their path: main() renders anyway, and
    the render's error names the problem.
    """
    result = asyncio.run(helm_sdkpy.Lint(config).run(str(chart)))
    return [
        f"lint error in {m.get('Path')}"
        for m in result.get("Messages") or []
        if int(m.get("Severity", 0)) >= LINT_ERROR
    ]


def render(
    config: helm_sdkpy.Configuration, chart: Path, values: dict[str, Any], release: str
) -> str:
    """The manifests ``helm install`` would apply, hooks included, as one YAML stream."""
    result = asyncio.run(
        helm_sdkpy.Install(config).run(
            release, str(chart), values=values or None, wait=False, timeout=60
        )
    )
    docs = [result.get("manifest") or ""]
    docs += [hook.get("manifest") or "" for hook in result.get("hooks") or []]
    return "\n---\n".join(d.strip() for d in docs if d.strip()) + "\n"


def write_objects(stream: str, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for doc in yaml.safe_load_all(stream):
        if not doc:
            continue
        path = out / f"{doc['kind'].lower()}-{doc['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("values", nargs="*", type=Path, help="values files, merged in order")
    parser.add_argument("--out", type=Path, help="folder for one file per object (else stdout)")
    parser.add_argument("--chart", type=Path, default=CHART, help="default: solution/helm")
    parser.add_argument("--release", default="tweet-classifier")
    parser.add_argument("--namespace", default="default")
    parser.add_argument(
        "--kube-version",
        default="1.30.0",
        help="what the fake API server reports (.Capabilities.KubeVersion)",
    )
    parser.add_argument("--no-lint", action="store_true", help="skip helm lint")
    args = parser.parse_args(argv)

    values: dict[str, Any] = {}
    for path in args.values:
        values = merge(values, yaml.safe_load(path.read_text()) or {})

    with FakeKubeAPI(args.kube_version) as api:
        config = helm_sdkpy.Configuration(
            namespace=args.namespace, kubeconfig=api.kubeconfig(args.namespace)
        )
        problems = [] if args.no_lint else lint(config, args.chart)
        try:
            stream = render(config, args.chart, values, args.release)
        except helm_sdkpy.HelmError as error:
            problems.append(f"render failed: {error}")
    if problems:
        print("helm:", *problems, sep="\n  ", file=sys.stderr)
        return 1

    if args.out:
        for path in write_objects(stream, args.out):
            print(path)
    else:
        sys.stdout.write(stream)
    return 0


if __name__ == "__main__":
    sys.exit(main())
