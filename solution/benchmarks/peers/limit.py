"""The limit: the five models' bare batched forward, no server, no queue, no tokenizing on the
clock. ``python -m solution.benchmarks.peers.limit --models-dir DIR --json OUT [options]``

Texts are tokenized once (per tokenizer family, as the service does), sorted by length and cut
into batches of B, so padding is nearly nil: the best case for a given B. Batches are then run in
a seeded random order until ``--min-seconds`` have passed. Throughput is reported in real tokens
per second and, divided by the corpus's mean tokens per text, in texts per second, so that a
run that happened to draw short batches is not flattered. The best batch size is the limit.

``--parity N`` also runs the first N texts in every dtype and compares each dtype with the first
one (fp32): label agreement and the largest score difference, per model.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from solution.server.compute.families import Family, group_families
from solution.server.compute.models import LoadedModel, load_model_specs, load_models
from solution.server.config import DEFAULT_MODEL_CONFIG, pick_dtype
from solution.standins.corpus import reference_texts

Batch = list[tuple[torch.Tensor, torch.Tensor]]  # per family: (input_ids, attention_mask)


def pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), longest), pad_id, dtype=torch.int64)
    mask = torch.zeros((len(seqs), longest), dtype=torch.int64)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return ids, mask


def forward(models: list[LoadedModel], families: list[Family], batch: Batch) -> torch.Tensor:
    """(models, rows, 2): top-1 index and score, as the service's runner computes them; copied
    to the host, which also waits for an accelerator to finish."""
    out = []
    device = next(models[0].model.parameters()).device
    with torch.inference_mode():
        for family, (ids, mask) in zip(families, batch, strict=True):
            ids, mask = ids.to(device), mask.to(device)
            for m in family.members:
                logits = models[m].model(input_ids=ids, attention_mask=mask).logits
                score, index = logits.float().softmax(-1).max(-1)
                out.append((m, torch.stack([index.float(), score], 1)))
    return torch.stack([t for _, t in sorted(out, key=lambda x: x[0])]).cpu()


def measure(
    models: list[LoadedModel],
    families: list[Family],
    ids: list[list[list[int]]],
    batch_size: int,
    min_s: float,
    seed: int,
) -> dict[str, Any]:
    n = len(ids[0])
    cost = [max(len(ids[f][i]) for f in range(len(families))) for i in range(n)]
    order = sorted(range(n), key=lambda i: cost[i])
    chunks = [order[k : k + batch_size] for k in range(0, n, batch_size)]
    random.Random(seed).shuffle(chunks)
    forward(models, families, _batch(families, ids, chunks[0]))  # warm-up, not timed
    times, texts, tokens = [], 0, 0
    start = time.perf_counter()
    for chunk in chunks:
        batch = _batch(families, ids, chunk)
        t = time.perf_counter()
        forward(models, families, batch)
        times.append(time.perf_counter() - t)
        texts += len(chunk)
        tokens += sum(cost[i] for i in chunk)
        if time.perf_counter() - start >= min_s:
            break
    busy = sum(times)
    mean_cost = statistics.fmean(cost)
    return {
        "batch_size": batch_size,
        "batches": len(times),
        "texts": texts,
        "tokens_per_s": tokens / busy,
        "texts_per_s_measured": texts / busy,
        "texts_per_s": tokens / busy / mean_cost,  # normalised to the corpus's mean length
        "batch_ms_median": 1000 * statistics.median(times),
        "batch_ms_per_mean_text": 1000 * busy / tokens * mean_cost * batch_size,
    }


def _batch(families: list[Family], ids: list[list[list[int]]], rows: list[int]) -> Batch:
    return [pad([ids[f][i] for i in rows], fam.pad_id) for f, fam in enumerate(families)]


def run_dtype(args: argparse.Namespace, name: str, texts: list[str]) -> dict[str, Any]:
    dtype = pick_dtype(name, torch.device("cpu"))
    specs = load_model_specs(DEFAULT_MODEL_CONFIG, args.models_dir)
    t = time.perf_counter()
    models = load_models(specs, torch.device("cpu"), dtype, 512)
    load_s = time.perf_counter() - t
    families = group_families(
        [m.tokenizer for m in models], [m.key for m in models], [m.max_tokens for m in models]
    )
    ids = [family.encode(texts) for family in families]
    runs = []
    for b in args.batch_sizes:
        runs.append(measure(models, families, ids, b, args.min_seconds, args.seed))
        r = runs[-1]
        print(
            f"limit {name} batch {b}: {r['texts_per_s']:.2f} texts/s "
            f"({r['tokens_per_s']:.0f} tokens/s, {r['batches']} batches, "
            f"{r['batch_ms_median']:.0f} ms median per batch)",
            file=sys.stderr,
            flush=True,
        )
    parity_rows = list(range(min(args.parity, len(texts))))
    parity = []
    for k in range(0, len(parity_rows), 8):
        parity.append(forward(models, families, _batch(families, ids, parity_rows[k : k + 8])))
    best = max(runs, key=lambda r: r["tokens_per_s"])
    result = {
        "dtype": name,
        "load_s": load_s,
        "threads": torch.get_num_threads(),
        "runs": runs,
        "best": best,
        "keys": [m.key for m in models],
        "labels": [list(m.labels) for m in models],
        "_parity": torch.cat(parity, 1) if parity else None,
    }
    del models, families
    gc.collect()
    return result


def compare(reference: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    a, b = reference["_parity"], other["_parity"]
    table = {}
    for m, key in enumerate(reference["keys"]):
        agree = (a[m, :, 0] == b[m, :, 0]).float().mean().item()
        table[key] = {
            "label_agreement": agree,
            "max_score_diff": (a[m, :, 1] - b[m, :, 1]).abs().max().item(),
        }
    return {"texts": a.shape[1], "vs": reference["dtype"], "models": table}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models-dir", required=True)
    parser.add_argument("--dtypes", default="fp32", help="comma-separated: fp32,bf16")
    parser.add_argument("--batch-sizes", default="1,8,32")
    parser.add_argument("--min-seconds", type=float, default=5.0)
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parity", type=int, default=32, help="texts compared across dtypes")
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    texts = reference_texts(args.texts, seed=args.seed)
    results = [run_dtype(args, name, texts) for name in args.dtypes.split(",")]
    parity = {r["dtype"]: compare(results[0], r) for r in results[1:]}
    for r in results:
        r.pop("_parity")
    args.json.write_text(json.dumps({"dtypes": results, "parity": parity}, indent=2) + "\n")


if __name__ == "__main__":
    main()
