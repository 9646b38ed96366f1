"""``python -m solution.server.fetch_models DEST``: download every configured model into
``DEST/<key>`` once (for a models volume or an image built with weights baked in)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from solution.server.compute.models import load_model_specs
from solution.server.config import DEFAULT_MODEL_CONFIG


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m solution.server.fetch_models", description=__doc__
    )
    parser.add_argument("dest", type=Path)
    parser.add_argument("--model-config", default=str(DEFAULT_MODEL_CONFIG))
    args = parser.parse_args()
    from huggingface_hub import snapshot_download

    for spec in load_model_specs(args.model_config):
        target = args.dest / spec.key
        if (target / "config.json").is_file():
            print(f"{spec.key}: present in {target}")
            continue
        try:
            snapshot_download(spec.source, revision=spec.revision, local_dir=target)
        except Exception as exc:
            print(
                f"{spec.key}: cannot download {spec.source}: {exc}\n"
                "Without network access, serve the offline stand-ins: make demo",
                file=sys.stderr,
            )
            return 2
        print(f"{spec.key}: downloaded {spec.source} into {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
