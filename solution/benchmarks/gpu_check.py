"""GPU check: the CUDA path, fp16 against fp32, and the engine against the bare compute limit.

    python -m solution.benchmarks.gpu_check [--standins .cache/standins-tiny] [--seconds 20]

Made for a single-GPU machine with Python 3.12, torch 2.11 and transformers 5.17 preinstalled and
nothing installable: it imports only torch, transformers, numpy and this repository (no uvloop,
orjson or httptools). Finishes in under 5 minutes.

Models: the five stand-ins at base size (the real architecture). If ``--standins`` holds
base-size weights they are loaded; otherwise (a tiny folder, which is small enough to carry to the
GPU machine) each model's config and tokenizer are taken from it and a base-size model with random
weights is built in memory from that config. The embedding table then has the stand-in tokenizer's
vocabulary rather than 250k rows: a lookup, it does not change the compute measured here.

Steps, each recorded in ``results/gpu-check.json`` and ``results/gpu-check.md``:
1. the CUDA path: device, dtype fp16, one stream per model, every result passes the checks;
2. fp16 vs fp32 on the same weights: label agreement and largest score difference per model;
3. the bare limit (``peers.limit``: sorted batches, no queue) at several batch sizes, fp16;
4. the engine, driven by a closed loop of single-text requests, at low load and at saturation:
   throughput against the limit, low-load median against one batch's compute;
5. CLS_MAX_WAIT_MS: an open loop at half the saturation rate for each wait in ``--waits``.

Without a CUDA device it stops and writes nothing, unless ``--allow-cpu`` (a smoke test of this
script's own code on the CPU, with bf16 in place of fp16; its output is marked as such).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from solution.server.config import DEFAULT_MODEL_CONFIG
from solution.server.engine import BatchingLimits, Engine
from solution.server.families import group_families
from solution.server.models import LoadedModel, load_model_specs, load_models, resolve_labels
from solution.server.runner import Runner
from solution.server.standins.corpus import reference_texts

from .checks import LabelSets
from .engine_target import EngineTarget
from .load import closed_loop, open_loop
from .peers import limit
from .scenarios import Scenario, Stage
from .stats import format_summary

# The served models' architecture (shared/models.md): what "base size" means.
BASE_DIMS = dict(
    hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072
)


def build_models(
    folder: Path, device: torch.device, dtype: torch.dtype, as_is: bool = False
) -> list[LoadedModel]:
    specs = load_model_specs(DEFAULT_MODEL_CONFIG, str(folder))
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    config = AutoConfig.from_pretrained(specs[0].source)
    if as_is or config.hidden_size == BASE_DIMS["hidden_size"]:
        return load_models(specs, device, dtype, 512)
    models = []
    for i, spec in enumerate(specs):
        config = AutoConfig.from_pretrained(spec.source)
        config.update(BASE_DIMS)
        torch.manual_seed(i)
        model = AutoModelForSequenceClassification.from_config(config)
        model.to(device=device, dtype=dtype).eval()
        models.append(
            LoadedModel(
                spec=spec,
                tokenizer=AutoTokenizer.from_pretrained(spec.source),
                model=model,
                labels=resolve_labels(config, spec.labels),
                max_tokens=512,
            )
        )
    return models


def families_of(models: list[LoadedModel]) -> list[Any]:
    return group_families(
        [m.tokenizer for m in models], [m.key for m in models], [m.max_tokens for m in models]
    )


def parity(models_half: list[LoadedModel], texts: list[str]) -> dict[str, Any]:
    """The same weights in fp32 against the half-precision models, batches of 8."""
    models_full = [copy.copy(m) for m in models_half]
    for entry in models_full:
        entry.model = copy.deepcopy(entry.model).float()
    families = families_of(models_half)
    ids = [f.encode(texts) for f in families]
    rows = list(range(len(texts)))
    half, full = [], []
    for k in range(0, len(rows), 8):
        batch = limit._batch(families, ids, rows[k : k + 8])
        half.append(limit.forward(models_half, families, batch))
        full.append(limit.forward(models_full, families, batch))
    a, b = torch.cat(full, 1), torch.cat(half, 1)
    table = {}
    for m, model in enumerate(models_half):
        table[model.key] = {
            "label_agreement": (a[m, :, 0] == b[m, :, 0]).float().mean().item(),
            "max_score_diff": (a[m, :, 1] - b[m, :, 1]).abs().max().item(),
        }
    del models_full
    return {"texts": len(texts), "models": table}


async def drive_engine(
    models: list[LoadedModel], device: torch.device, texts: list[str], seconds: float, users: int
) -> dict[str, Any]:
    labels: LabelSets = {m.key: frozenset(m.labels) for m in models}
    engine = Engine(models, families_of(models), device, BatchingLimits())
    engine.start()
    await engine.warm_up(texts[:8])
    streams = engine.runner.streams
    out: dict[str, Any] = {
        "streams": sum(s is not None for s in streams),
        "models": len(models),
    }
    target = EngineTarget(engine, texts, labels, "engine")
    for n, name in ((1, "low_load"), (users, "saturation")):
        tally = await closed_loop(target, n, seconds, warmup_s=seconds / 4 if n > 1 else 0.0)
        out[name] = {"users": n, **tally.summary()}
        print(format_summary(f"engine {n} users", out[name]), file=sys.stderr)
    await asyncio.to_thread(engine.stop)
    return out


async def sweep_waits(
    models: list[LoadedModel],
    device: torch.device,
    texts: list[str],
    rate: float,
    waits_ms: list[float],
    seconds: float,
) -> dict[str, Any]:
    """CLS_MAX_WAIT_MS on the GPU: an open loop at ``rate`` for each wait, fresh engine each."""
    labels: LabelSets = {m.key: frozenset(m.labels) for m in models}
    families = families_of(models)
    scenario = Scenario("sweep", f"{rate:.1f}/s", rate, (Stage(seconds, rate),))
    out: dict[str, Any] = {"rate_rps": rate}
    for wait in waits_ms:
        engine = Engine(models, families, device, BatchingLimits(max_wait_s=wait / 1000.0))
        engine.start()
        await engine.warm_up(texts[:8])
        target = EngineTarget(engine, texts, labels, f"engine wait {wait:g} ms")
        tally = await open_loop(target, scenario.arrivals(), max_vus=1024)
        out[f"{wait:g}"] = tally.summary()
        print(format_summary(target.name, out[f"{wait:g}"]), file=sys.stderr)
        await asyncio.to_thread(engine.stop)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--standins", default=".cache/standins-tiny", help="stand-ins folder")
    parser.add_argument("--out", type=Path, default=Path("solution/benchmarks/results"))
    parser.add_argument("--seconds", type=float, default=20.0, help="per engine load level")
    parser.add_argument("--users", type=int, default=256, help="closed-loop users at saturation")
    parser.add_argument("--batch-sizes", default="1,8,32,64,128")
    parser.add_argument("--texts", type=int, default=1024)
    parser.add_argument("--waits", default="0,1,2,5", help="CLS_MAX_WAIT_MS values to sweep")
    parser.add_argument("--as-is", action="store_true", help="keep the stand-ins' own size")
    parser.add_argument("--min-seconds", type=float, default=3.0, help="per limit batch size")
    parser.add_argument("--allow-cpu", action="store_true", help="smoke-test this script on cpu")
    args = parser.parse_args()
    started = time.perf_counter()

    cuda = torch.cuda.is_available()
    if not cuda and not args.allow_cpu:
        print("no CUDA device visible: nothing measured, nothing written", file=sys.stderr)
        return 2
    device = torch.device("cuda" if cuda else "cpu")
    half = torch.float16 if cuda else torch.bfloat16
    texts = reference_texts(args.texts, seed=0)
    doc: dict[str, Any] = {
        "command": [sys.executable, "-m", "solution.benchmarks.gpu_check", *sys.argv[1:]],
        "device": torch.cuda.get_device_name(0) if cuda else "cpu (smoke test, not a GPU result)",
        "torch": torch.__version__,
        "dtype": str(half).removeprefix("torch."),
        "standins": args.standins,
    }
    models = build_models(Path(args.standins), device, half, args.as_is)
    runner = Runner(models, device)
    doc["cuda_path"] = {
        "streams": sum(s is not None for s in runner.streams),
        "param_dtypes": sorted({str(next(m.model.parameters()).dtype) for m in models}),
        "device": str(next(models[0].model.parameters()).device),
    }
    doc["parity_vs_fp32"] = parity(models, texts[:64])
    families = families_of(models)
    ids = [f.encode(texts) for f in families]
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    runs = [limit.measure(models, families, ids, b, args.min_seconds, 0) for b in sizes]
    best = max(runs, key=lambda r: r["tokens_per_s"])
    doc["limit"] = {"runs": runs, "best": best}
    engine = asyncio.run(drive_engine(models, device, texts, args.seconds, args.users))
    doc["engine"] = engine
    sat = engine["saturation"]["throughput_rps"]
    waits = [float(w) for w in args.waits.split(",")]
    doc["max_wait_sweep"] = asyncio.run(
        sweep_waits(models, device, texts, 0.5 * sat, waits, args.seconds / 2)
    )
    p50 = engine["low_load"]["latency_ms"]["p50"]
    doc["ratios"] = {
        "engine_vs_limit": sat / best["texts_per_s"],
        "low_load_p50_ms": p50,
        "one_batch_ms": runs[0]["batch_ms_median"],
        "low_load_p50_over_batch_plus_2ms": p50 / (runs[0]["batch_ms_median"] + 2.0),
    }
    checks_ok = (
        doc["cuda_path"]["streams"] == (len(models) if cuda else 0)
        and engine["low_load"]["failed"] == 0
        and engine["saturation"]["failed"] == 0
        and all(p["label_agreement"] >= 0.95 for p in doc["parity_vs_fp32"]["models"].values())
    )
    doc["checks_passed"] = checks_ok
    doc["wall_s"] = round(time.perf_counter() - started, 1)
    name = "gpu-check" if cuda else "gpu-check-cpu-smoke"
    out = args.out if cuda else args.out / "tmp"  # a cpu smoke test is not a result
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    (out / f"{name}.md").write_text(render(doc))
    print(render(doc))
    return 0 if checks_ok else 1


def render(doc: dict[str, Any]) -> str:
    r = doc["ratios"]
    lines = [
        f"### GPU check: {doc['device']}, torch {doc['torch']}, {doc['dtype']}",
        "",
        f"CUDA path: {doc['cuda_path']}; checks passed: {doc['checks_passed']}.",
        "",
        "| model | label agreement vs fp32 | max score difference |",
        "|---|---|---|",
    ]
    for key, p in doc["parity_vs_fp32"]["models"].items():
        lines.append(f"| {key} | {100 * p['label_agreement']:.1f}% | {p['max_score_diff']:.4f} |")
    lines += ["", "| bare limit batch | texts/s | tokens/s | ms per batch |", "|---|---|---|---|"]
    for run in doc["limit"]["runs"]:
        lines.append(
            f"| {run['batch_size']} | {run['texts_per_s']:.1f} | {run['tokens_per_s']:.0f} | "
            f"{run['batch_ms_median']:.1f} |"
        )
    sweep = doc.get("max_wait_sweep", {})
    lines += [
        "",
        f"CLS_MAX_WAIT_MS at {sweep.get('rate_rps', 0):.0f} req/s (half of saturation):",
        "",
        "| wait ms | p50 ms | p95 ms | req/s |",
        "|---|---|---|---|",
    ]
    for wait, run in sweep.items():
        if wait == "rate_rps":
            continue
        lat = run["latency_ms"]
        lines.append(
            f"| {wait} | {lat['p50']:.1f} | {lat['p95']:.1f} | {run['throughput_rps']:.1f} |"
        )
    lines += [
        "",
        f"Engine at saturation / bare limit: {r['engine_vs_limit']:.2f} (target >= 0.95). "
        f"Low-load p50 {r['low_load_p50_ms']:.1f} ms vs one batch {r['one_batch_ms']:.1f} ms "
        f"+ 2 ms: ratio {r['low_load_p50_over_batch_plus_2ms']:.2f} (target <= 1).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
