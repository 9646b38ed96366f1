#!/usr/bin/env bash
# One install path for the README, make, .ci/run and the Dockerfile.
#   scripts/install.sh [--dev] [VENV_DIR]
# Creates VENV_DIR (default .venv) if missing, installs the pinned requirements and the project
# itself (editable) into it. --dev adds the test and lint tools. Re-running is cheap: pip skips
# what is already satisfied.
set -euo pipefail
cd "$(dirname "$0")/.."

req=requirements.txt
if [[ "${1:-}" == "--dev" ]]; then req=requirements-dev.txt; shift; fi
venv="${1:-.venv}"
python="${PYTHON:-python3}"

if [[ ! -x "$venv/bin/python" ]]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "pip>=23.2"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
echo "installed $req into $venv"
