#!/usr/bin/env bash
# The deploy-tools venv: helm-sdkpy (needs Python >= 3.12), kubernetes-validate, hadolint.
#   scripts/helm_venv.sh [VENV_DIR]      (default .venv-helm)
# Idempotent and quiet when up to date: pip runs only when requirements-helm.txt changed since
# the last successful install. A lock serialises concurrent callers (tests, make targets).
# The interpreter: $PYTHON312, else python3.12 on PATH, else pyenv's newest 3.12 (pyenv need
# not be on PATH: $PYENV_ROOT or ~/.pyenv is searched).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv-helm}"
req=requirements-helm.txt
stamp="$venv/.requirements-helm.sha256"

find_python() {
  if [[ -n "${PYTHON312:-}" ]]; then echo "$PYTHON312"; return; fi
  if command -v python3.12 >/dev/null && python3.12 -c '' 2>/dev/null; then
    command -v python3.12; return
  fi
  local root found
  root="$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")"
  found="$(find "$root/versions" -maxdepth 1 -name '3.12.*' 2>/dev/null | sort -V | tail -n 1)"
  if [[ -n "$found" ]]; then echo "$found/bin/python"; return; fi
  echo "scripts/helm_venv.sh: no Python 3.12 found; set PYTHON312=/path/to/python3.12" >&2
  exit 1
}

mkdir -p "$venv"
exec 9>"$venv/.lock"
flock 9
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
if [[ ! -x "$venv/bin/python" ]]; then
  "$(find_python)" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
echo "$want" >"$stamp"
echo "installed $req into $venv"
