"""``python -m solution.server.fetch_models DEST``: download every configured model into
``DEST/<key>`` once (for a models volume or an image built with weights baked in).

``--check`` downloads nothing: it exits 0 when every configured model is in ``DEST`` and readable
by this process, else prints one line saying what is missing and how to supply it, and exits 1
(the image's entrypoint runs it before the server, so that a container without models stops at
once instead of waiting on a hub it cannot reach)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from solution.server.config import DEFAULT_MODEL_CONFIG

SUPPLY_HINT = (
    "mount them read-only (-v DIR:{dest}:ro), bake them in (--build-arg BAKE_MODELS=1), "
    "or set FETCH_MODELS=1 to download them at start"
)


def problems(keys: list[str], dest: Path) -> list[str]:
    """What keeps the models in ``dest`` from loading here: a model without ``config.json``, or a
    file this process cannot read (a volume written by another user with mode 0600)."""
    missing = [k for k in keys if not (dest / k / "config.json").is_file()]
    out = [f"no model for {', '.join(missing)}"] if missing else []
    unreadable = [
        str(path)
        for k in keys
        if k not in missing
        for path in sorted((dest / k).rglob("*"))
        if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0))
    ]
    if unreadable:
        more = f" and {len(unreadable) - 1} more" if len(unreadable) > 1 else ""
        out.append(f"uid {os.getuid()} cannot read {unreadable[0]}{more} (chmod -R a+rX)")
    return out


def configured_keys(config_path: str) -> list[str]:
    """The response keys of the model config, read without importing torch (the check runs
    before every start); a config the server would refuse is refused there, with its reasons."""
    try:
        return [str(m["key"]) for m in json.loads(Path(config_path).read_text())["models"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(
            f"model config {config_path}: expected {{'models': [{{'key': ...}}]}} ({exc})"
        ) from None


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m solution.server.fetch_models", description=__doc__
    )
    parser.add_argument("dest", type=Path)
    parser.add_argument("--model-config", default=str(DEFAULT_MODEL_CONFIG))
    parser.add_argument(
        "--check", action="store_true", help="download nothing; exit 1 unless all are there"
    )
    args = parser.parse_args()
    if args.check:
        found = problems(configured_keys(args.model_config), args.dest)
        if found:
            hint = SUPPLY_HINT.format(dest=args.dest)
            print(f"models not usable in {args.dest}: {'; '.join(found)}: {hint}", file=sys.stderr)
            return 1
        return 0
    from huggingface_hub import snapshot_download

    from solution.server.compute.models import load_model_specs

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
