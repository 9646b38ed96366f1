"""Regenerate the Python stubs of the .proto files: ``make proto`` (needs grpcio-tools, a dev pin).

The stubs are committed, so the service runs without grpcio-tools; ``tests/proto/test_stubs.py``
regenerates them into a temporary folder and fails when the committed ones differ. The import
root is the repository root, so the stubs import each other as ``solution.proto.classifier.v1``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ["solution/proto/classifier/v1/classifier.proto"]
OUTPUTS = ["_pb2.py", "_pb2.pyi", "_pb2_grpc.py"]


def generated_files() -> list[str]:
    """The committed stub paths, relative to the repository root."""
    return [p.removesuffix(".proto") + suffix for p in PROTOS for suffix in OUTPUTS]


def generate(out_dir: Path) -> None:
    """Write the stubs of ``PROTOS`` under ``out_dir`` (the repository root for ``make proto``)."""
    from grpc_tools import protoc  # a dev dependency: only needed to regenerate

    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"--proto_path={ROOT}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(ROOT / p) for p in PROTOS),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(args)}")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
