"""The winner-style peer: per-model asyncio queues, a fixed 10 ms wait, batches of 32, each model
tokenizing on its own; the shape of the best entries to the original challenge.

``python -m solution.benchmarks.peers.winner --models-dir DIR --port P [--dtype fp32|bf16|fp16]
[--device cpu|cuda]`` (fp16 is for a GPU, where ``benchmarks.served`` runs it beside the service)

Per model, a worker coroutine takes the first waiting text, waits up to 10 ms for more (at most
32), then tokenizes and runs the batch in the one inference thread (torch uses every core inside
a forward; two threads would only fight over them). A request puts its text on all five queues
and answers when the five results are in. Done well for its design: padding to the longest in
the batch, inference mode, top-1 taken on the logits, labels mapped through the model config.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
MAX_WAIT_S = 0.010
MAX_BATCH = 32

Item = tuple[str, asyncio.Future[dict[str, Any]]]


class ModelWorker:
    def __init__(self, loaded: Any, executor: ThreadPoolExecutor):
        self.loaded = loaded  # solution.server.compute.models.LoadedModel
        self.queue: asyncio.Queue[Item] = asyncio.Queue()
        self.executor = executor

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            deadline = time.monotonic() + MAX_WAIT_S
            while len(batch) < MAX_BATCH:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), left))
                except TimeoutError:
                    break
            texts = [text for text, _ in batch]
            try:
                results = await loop.run_in_executor(self.executor, self.forward, texts)
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    def forward(self, texts: list[str]) -> list[dict[str, Any]]:
        m = self.loaded
        encoded = m.tokenizer(
            texts, padding=True, truncation=True, max_length=m.max_tokens, return_tensors="pt"
        ).to(next(m.model.parameters()).device)
        with torch.inference_mode():
            logits = m.model(**encoded).logits
            scores, indices = logits.float().softmax(-1).max(-1)
        return [
            {"score": float(s), "label": m.labels[int(i)]}
            for s, i in zip(scores.tolist(), indices.tolist(), strict=True)
        ]


def make_classify(models: list[Any]) -> Callable[[str], Awaitable[dict[str, Any]]]:
    """text -> the five-key result; the queues and workers start on the first call's loop. Also
    driven in-process (no HTTP) by gpu_check, on a GPU machine that has no uvicorn."""
    executor = ThreadPoolExecutor(1, thread_name_prefix="inference")
    workers = [ModelWorker(m, executor) for m in models]
    started: list[asyncio.Task[None]] = []

    async def classify(text: str) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        if not started:  # the queues and workers belong to the running loop
            started.extend(loop.create_task(w.run()) for w in workers)
        futures = []
        for worker in workers:
            future: asyncio.Future[dict[str, Any]] = loop.create_future()
            worker.queue.put_nowait((text, future))
            futures.append(future)
        results = await asyncio.gather(*futures)
        return {m.key: r for m, r in zip(models, results, strict=True)}

    return classify


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models-dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args()

    from solution.server.compute.models import load_model_specs, load_models
    from solution.server.config import DEFAULT_MODEL_CONFIG

    from .asgi import make_app, serve  # orjson and uvicorn: only for serving over HTTP

    specs = load_model_specs(DEFAULT_MODEL_CONFIG, args.models_dir)
    models = load_models(specs, torch.device(args.device), DTYPES[args.dtype], 512)
    serve(make_app(make_classify(models)), args.host, args.port)


if __name__ == "__main__":
    main()
