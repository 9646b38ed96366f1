#!/bin/sh
# Image entrypoint: download the configured models into CLS_MODELS_DIR unless they are there
# already (a mounted volume keeps them for the next start; fetch_models skips present ones),
# then become the server, so that it is PID 1 and gets SIGTERM. Arguments go to the server.
set -eu
if [ -n "${CLS_MODELS_DIR:-}" ]; then
  if [ -n "${CLS_MODEL_CONFIG:-}" ]; then
    python -m solution.server.fetch_models "$CLS_MODELS_DIR" --model-config "$CLS_MODEL_CONFIG"
  else
    python -m solution.server.fetch_models "$CLS_MODELS_DIR"
  fi
fi
exec python -m solution.server "$@"
