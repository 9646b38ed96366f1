#!/usr/bin/env bash
# Prints the path of a Python 3.12 interpreter: $PYTHON312, else python3.12 on PATH, else pyenv's
# newest 3.12 (pyenv need not be on PATH: $PYENV_ROOT or ~/.pyenv is searched). Exits 1 naming
# the variable to set when there is none. For the venvs that need 3.12: the deploy tools'
# (helm_venv.sh) and the GPU machine's stack (solution/benchmarks/gpu_stack_venv.sh).
set -euo pipefail
if [[ -n "${PYTHON312:-}" ]]; then echo "$PYTHON312"; exit 0; fi
if command -v python3.12 >/dev/null && python3.12 -c '' 2>/dev/null; then
  command -v python3.12
  exit 0
fi
root="$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")"
found="$(find "$root/versions" -maxdepth 1 -name '3.12.*' 2>/dev/null | sort -V | tail -n 1 || true)"
if [[ -n "$found" ]]; then echo "$found/bin/python"; exit 0; fi
echo "no Python 3.12 found; set PYTHON312=/path/to/python3.12" >&2
exit 1
