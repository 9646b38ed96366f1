#!/usr/bin/env bash
# Lint the Helm chart and print the manifests it renders, with Helm's own engine (no cluster).
#   scripts/render_chart.sh [--chart DIR] [--release NAME] [--namespace NS] [--out DIR]
#                           [--kube-version X.Y.Z] [values.yaml ...]
# e.g. scripts/render_chart.sh solution/helm/envs/t4.yaml > /tmp/t4.yaml
#      scripts/render_chart.sh --chart autotests/helm --release autotests   (default: solution/helm)
# Makes the deploy-tools venv first if needed (scripts/helm_venv.sh).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${HELM_VENV:-$root/.venv-helm}"
"$root/scripts/helm_venv.sh" "$venv" >&2
# Helm's Go code reads HOME (cache, config, registry dirs) once at start: give it a private one.
helm_home="$(mktemp -d)"
trap 'rm -rf "$helm_home"' EXIT
HOME="$helm_home" "$venv/bin/python" "$root/scripts/render_chart.py" "$@"
