#!/bin/sh
# Image entrypoint: make sure the configured models are in CLS_MODELS_DIR, then become the server
# (exec: it is PID 1 and gets SIGTERM). Arguments go to the server: IMAGE --max-wait-ms 2
#
# The models are baked into the image (--build-arg BAKE_MODELS=1) or mounted there (read-only is
# fine). When they are not, the container stops at once with one line saying how to supply them,
# unless FETCH_MODELS=1 asks to download the missing ones first (into a writable volume; needs
# the Hugging Face hub). An empty CLS_MODELS_DIR serves the configured hub ids directly.
set -eu

fetch_models() {
  if [ -n "${CLS_MODEL_CONFIG:-}" ]; then
    python -m solution.server.fetch_models "$@" --model-config "$CLS_MODEL_CONFIG"
  else
    python -m solution.server.fetch_models "$@"
  fi
}

if [ -n "${CLS_MODELS_DIR:-}" ]; then
  if [ "${FETCH_MODELS:-0}" = 1 ]; then
    fetch_models "$CLS_MODELS_DIR"
  else
    fetch_models "$CLS_MODELS_DIR" --check || exit 1
  fi
fi
exec python -m solution.server "$@"
