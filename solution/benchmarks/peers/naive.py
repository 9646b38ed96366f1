"""The naive peer: a transformers pipeline per model, run on each request's text in turn.

``python -m solution.benchmarks.peers.naive --models-dir DIR --port P [--dtype fp32|bf16]``

Done well for its design: the pipelines run in one worker thread (the event loop keeps accepting;
torch already uses every core inside one forward), texts are truncated to the models' limit, and
the labels are mapped to the API's through the model config's overrides. No batching: each
request is five forwards of one text.
"""

from __future__ import annotations

import argparse
import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from .asgi import make_app, serve

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def load(models_dir: str, dtype: torch.dtype) -> list[tuple[str, Any, dict[str, str]]]:
    """(response key, pipeline, pipeline label -> API label) per configured model."""
    from transformers import pipeline

    from solution.server.compute.models import load_model_specs, resolve_labels
    from solution.server.config import DEFAULT_MODEL_CONFIG

    loaded = []
    for spec in load_model_specs(DEFAULT_MODEL_CONFIG, models_dir):
        pipe = pipeline("text-classification", model=spec.source, device="cpu", dtype=dtype)
        config = pipe.model.config
        api = resolve_labels(config, spec.labels)
        id2label: dict[Any, Any] = dict(config.id2label or {})
        names = {str(id2label[i]): api[i] for i in range(len(api))}
        loaded.append((spec.key, pipe, names))
    return loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models-dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    args = parser.parse_args()
    models = load(args.models_dir, DTYPES[args.dtype])
    worker = ThreadPoolExecutor(1, thread_name_prefix="pipelines")

    def classify_sync(text: str) -> dict[str, dict[str, Any]]:
        out = {}
        for key, pipe, names in models:
            top = pipe(text, truncation=True, max_length=512, top_k=1)[0]
            out[key] = {"score": float(top["score"]), "label": names[top["label"]]}
        return out

    async def classify(text: str) -> dict[str, dict[str, Any]]:
        return await asyncio.get_running_loop().run_in_executor(worker, classify_sync, text)

    serve(make_app(classify), args.host, args.port)


if __name__ == "__main__":
    main()
