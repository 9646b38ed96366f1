#!/usr/bin/env bash
# The prepared device run: gpu_check on a lent GPU machine, in one `run` call
# (solution/benchmarks/README.md, "GPU check", has the exact call and what it carries).
#
#   OUT=DIR bash solution/benchmarks/gpu_run.sh [gpu_check options]
#
# Writes into $OUT: gpu-check.json and gpu-check.md (rewritten after every step), gpu-check.log
# (everything printed) and nvidia-smi.txt. Stops at once, naming what is missing. PYTHON picks
# the interpreter (default python3: on the GPU machine, the one that holds torch); STANDINS the
# carried tiny stand-ins; GPU_CHECK_TIMEOUT_S ends gpu_check before the call's own limit, so the
# files it has written come back in any case.
set -uo pipefail

OUT=${OUT:?set OUT to the folder the results go to}
PYTHON=${PYTHON:-python3}
STANDINS=${STANDINS:-.cache/standins-tiny}
TIMEOUT_S=${GPU_CHECK_TIMEOUT_S:-330}

mkdir -p "$OUT"
fail() {
    echo "gpu_run: $*" | tee -a "$OUT/gpu-check.log" >&2
    exit 2
}

command -v "$PYTHON" >/dev/null || fail "no $PYTHON on PATH (set PYTHON)"
"$PYTHON" -c "import torch, transformers, tokenizers, numpy" 2>>"$OUT/gpu-check.log" \
    || fail "$PYTHON cannot import torch, transformers, tokenizers and numpy"
for key in cardiffnlp ivanlau svalabs EIStakovskii jy46604790; do
    [ -f "$STANDINS/$key/config.json" ] || fail "missing $STANDINS/$key: build it here with" \
        "'python -m solution.standins --size tiny $STANDINS' and name it in carry"
done

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
if command -v nvidia-smi >/dev/null; then
    nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1  # a read-only query: the card as we found it
fi
"$PYTHON" -c "import sys, torch, transformers; print('python', sys.version.split()[0], \
'torch', torch.__version__, 'transformers', transformers.__version__, \
'cuda', torch.cuda.is_available())" | tee -a "$OUT/gpu-check.log"

timeout "$TIMEOUT_S" "$PYTHON" -m solution.benchmarks.gpu_check \
    --standins "$STANDINS" --out "$OUT" "$@" 2>&1 | tee -a "$OUT/gpu-check.log"
status=${PIPESTATUS[0]}
[ "$status" -eq 124 ] && echo "gpu_run: gpu_check stopped after ${TIMEOUT_S}s" \
    "(its files hold every finished step)" | tee -a "$OUT/gpu-check.log"
exit "$status"
