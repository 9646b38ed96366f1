#!/usr/bin/env bash
# A venv with the GPU machine's Python stack, to rehearse the device run on the CPU before device
# time is spent on it: Python 3.12, torch 2.11.0 (PyPI's CUDA build, which runs on the CPU),
# transformers 5.17, numpy 2.5.2 and tokenizers 0.23.2 as that machine has them, and without the
# packages its image lacks (the device run carries those as wheels: gpu_wheels.sh). Versions from
# /work/.library/device/KINDS.md ("pip list, as a session saw it", "Python packages already
# there"). About 5 GB in the venv (torch's CUDA libraries), a minute or two to install.
#
#   bash solution/benchmarks/gpu_stack_venv.sh [VENV]      (default /tmp/gpu-stack)
#
# Then the benchmarks README's CPU smoke of gpu_run.sh with PYTHON=VENV/bin/python and
# WHEELS=.whl runs the device script as the machine would, the carried wheels installed for real.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=${1:-/tmp/gpu-stack}

python312=$(scripts/python312.sh)  # exits naming PYTHON312 when there is none
"$python312" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
grep -v '^torch==' requirements.txt >"$venv/requirements.txt"  # the runtime pins, torch apart
"${pip[@]}" install --quiet -r "$venv/requirements.txt"
"${pip[@]}" install --quiet torch==2.11.0 numpy==2.5.2 tokenizers==0.23.2
"${pip[@]}" uninstall --yes --quiet orjson httptools grpcio-health-checking grpcio-reflection \
    pydantic pydantic-core
"$venv/bin/python" -c "import sys, torch, transformers, numpy, tokenizers; \
print('python', sys.version.split()[0], 'torch', torch.__version__, 'transformers', \
transformers.__version__, 'numpy', numpy.__version__, 'tokenizers', tokenizers.__version__)"
