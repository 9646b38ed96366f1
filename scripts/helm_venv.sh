#!/usr/bin/env bash
# The deploy-tools venv: helm-sdkpy (needs Python >= 3.12), kubernetes-validate, hadolint.
#   scripts/helm_venv.sh [VENV_DIR]      (default .venv-helm)
# Idempotent and quiet when up to date: pip runs only when requirements-helm.txt changed since
# the last successful install. A lock serialises concurrent callers (tests, make targets).
# The interpreter: scripts/python312.sh's ($PYTHON312, python3.12 on PATH, or pyenv's newest).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv-helm}"
req=requirements-helm.txt
stamp="$venv/.requirements-helm.sha256"

mkdir -p "$venv"
exec 9>"$venv/.lock"
flock 9
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
if [[ ! -x "$venv/bin/python" ]]; then
  python="$(scripts/python312.sh)"
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
echo "$want" >"$stamp"
echo "installed $req into $venv"
