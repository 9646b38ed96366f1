"""Step 1, parity: what the service computes, row by row, against each text alone through plain
transformers in fp32 on the CPU, on the tiny stand-ins as they are (trained, so their logits mean
something). fp32 on the device, eager and graphs: every row within ``FP32_TOLERANCE``; the half
type, eager and graphs: each model's whole output within ``HALF_TOLERANCE`` (its worst rows
reported) and top-1 agreement of at least ``HALF_AGREEMENT``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from solution.server.compute import batching, planning
from solution.server.compute.families import Family
from solution.server.compute.models import LoadedModel, load_model_specs, load_models
from solution.server.compute.runner import Runner
from solution.server.config import DEFAULT_MODEL_CONFIG
from solution.standins.corpus import reference_texts

from ..gpu_report import Record
from .common import Setup, families_of, release, run_batch

FP32_TOLERANCE = 1e-3  # relative logit error, fp32 on the device vs fp32 on the CPU
HALF_TOLERANCE = {"float16": 1e-2, "bfloat16": 5e-2}  # bf16 keeps 8 mantissa bits to fp16's 11
HALF_AGREEMENT = 0.98  # top-1 agreement with fp32; near-ties may flip


def parity_texts(n: int) -> list[str]:
    """Corpus texts plus the hard cases, some twice (the runner computes duplicates once)."""
    texts = reference_texts(n, seed=7)
    hard = ["", "👍😜" * 30, "NUL\u0000 \u0007\u001f end", "long " * 700, "a"]
    return texts + hard + texts[:8] + hard[:2]


def reference(models: list[LoadedModel], texts: list[str]) -> list[np.ndarray]:
    """Per model, (texts, labels): each text alone through plain transformers, fp32, CPU."""
    out = []
    with torch.inference_mode():
        for m in models:
            rows = []
            for text in texts:
                enc = m.tokenizer(
                    text, truncation=True, max_length=m.max_tokens, return_tensors="pt"
                )
                rows.append(m.model(**enc).logits[0].float().numpy())
            out.append(np.stack(rows))
    return out


def run_texts(runner: Runner, families: list[Family], texts: list[str]) -> np.ndarray:
    """The service's path for ``texts``: dedupe, plan (to the runner's buckets, if it has graphs),
    run; logits per text."""
    unique, row_of_text = batching.dedupe(texts)
    ids = [f.encode(unique) for f in families]
    plan = planning.plan(ids, families, range(len(unique)), 256, 16, None, runner.buckets)
    out = run_batch(runner, plan.work, len(unique))
    return out.logits[:, row_of_text, :]


def compare(
    got: np.ndarray, ref: list[np.ndarray], keys: list[str], tolerance: float
) -> dict[str, dict[str, Any]]:
    """Per model: the worst row's relative logit error (its norm floored at the model's median
    row norm: a row of near-zero logits would turn rounding into a huge ratio), rows over
    ``tolerance``, the whole output's ‖Δ‖/‖ref‖, and top-1 agreement."""
    table = {}
    for m, key in enumerate(keys):
        expected = ref[m]
        actual = got[m, :, : expected.shape[1]]
        norms = np.linalg.norm(expected, axis=1)
        rel = np.linalg.norm(actual - expected, axis=1) / np.maximum(norms, np.median(norms))
        table[key] = {
            "max_rel_error": float(rel.max()),
            "rows": int(rel.size),
            "rows_over": int((rel > tolerance).sum()),
            "tolerance": tolerance,
            "rel_error": float(np.linalg.norm(actual - expected) / np.linalg.norm(expected)),
            "label_agreement": float((actual.argmax(1) == expected.argmax(1)).mean()),
        }
    return table


def parity(result: dict[str, Any], record: Record, setup: Setup) -> None:
    args, device, capture = setup.args, setup.device, setup.capture
    specs = load_model_specs(DEFAULT_MODEL_CONFIG, str(args.standins))
    texts = parity_texts(args.parity_texts)
    cpu_models = load_models(specs, torch.device("cpu"), torch.float32, 512)
    ref = reference(cpu_models, texts)
    keys = [m.key for m in cpu_models]
    result["texts"] = len(texts)
    comparisons: dict[str, Any] = {}
    result["comparisons"] = comparisons
    grid = {
        "max_rows": min(16, args.graph_rows),
        "max_length": args.graph_length,
        "capture": capture,
    }
    for dtype in (torch.float32, setup.half):
        name = str(dtype).removeprefix("torch.")
        tolerance = FP32_TOLERANCE if dtype == torch.float32 else HALF_TOLERANCE[name]
        models = load_models(specs, device, dtype, 512)
        families = families_of(models)
        runner = Runner(models, device)
        comparisons[f"{name} eager"] = compare(
            run_texts(runner, families, texts), ref, keys, tolerance
        )
        result[f"{name}_capture"] = runner.prepare("on", **grid)
        comparisons[f"{name} graphs"] = compare(
            run_texts(runner, families, texts), ref, keys, tolerance
        )
        record.save()
        del runner, models
        release()
    judge(record, comparisons)


def judge(record: Record, comparisons: dict[str, Any]) -> None:
    """fp32 row by row; the half type on each model's whole output (rounding), rows reported."""
    for path, per_model in comparisons.items():
        if path.startswith("float32"):
            over = sum(c["rows_over"] for c in per_model.values())
            record.check(
                f"parity {path}: every row within {FP32_TOLERANCE}", over == 0, f"{over} rows over"
            )
            continue
        worst_rel = max(c["rel_error"] for c in per_model.values())
        tolerance = next(iter(per_model.values()))["tolerance"]
        record.check(
            f"parity {path}: relative logit error <= {tolerance} per model",
            worst_rel <= tolerance,
            f"worst model {worst_rel:.2e}",
        )
        worst = min(c["label_agreement"] for c in per_model.values())
        record.check(
            f"parity {path}: label agreement >= {HALF_AGREEMENT}",
            worst >= HALF_AGREEMENT,
            f"worst model {worst:.3f}",
        )
