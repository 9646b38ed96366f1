"""GPU check v2: the CUDA path's parity, graphs and speed, in one command, on one GPU.

    python -m solution.benchmarks.gpu_check --standins .cache/standins-tiny --out DIR

(``solution/benchmarks/gpu_run.sh`` is the prepared device run around it.) Made for a GPU machine
with Python 3.12, torch 2.11 and transformers 5.17 preinstalled, no network and nothing
installable: it imports torch, transformers, tokenizers, numpy and this repository only (no
orjson, httptools, uvicorn), sets ``HF_HUB_OFFLINE`` and loads nothing from the hub. It stops at
once, naming what is missing, when there is no CUDA device (unless ``--allow-cpu``) or the
stand-ins folder lacks a model. ``DIR/gpu-check.json`` and ``.md`` are rewritten after every step.

Steps:
1. parity, on the tiny stand-ins as they are (trained by ``standins``, so their logits mean
   something): what the service computes (the ``Runner``: streams, micro-batches, deduplicated
   rows, graphs) row by row against a per-text fp32 forward on the CPU: fp32 on the device with
   and without graphs (relative logit error at most 1e-3), fp16 with and without graphs (relative
   error and label agreement, per model);
2. one batch under ``torch.cuda.set_sync_debug_mode("error")``: any host sync raises, and is
   reported;
3. speed, on base-size models (the real architecture, random weights) built in memory from the
   stand-ins' configs: graph capture (time, memory), graphs vs eager on every captured bucket,
   a timing table at batch 1, 8, 32, 128 (eager on one stream, eager on five, graphs: host
   enqueue beside GPU time), the bare fp16 limit (``peers.limit``), the engine at low load and at
   saturation, the winner-style peer (``peers.winner``, in-process) at saturation, and a short
   ``CLS_MAX_WAIT_MS`` sweep.

``--allow-cpu`` runs every step on the CPU as a smoke test of this script (bf16 for fp16; graphs
emulated by eager forwards through the same static buffers); its output says so and is named
``gpu-check-cpu-smoke``. It is never a GPU result.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before anything imports huggingface_hub, which reads it once
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import argparse
import asyncio
import gc
import platform
import statistics
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers

from solution.server.compute import batching, buckets, planning
from solution.server.compute.families import Family, group_families
from solution.server.compute.graphs import capture_eager
from solution.server.compute.models import (
    LoadedModel,
    load_model_specs,
    load_models,
    resolve_labels,
)
from solution.server.compute.runner import FamilyWork, ForwardCall, Runner
from solution.server.compute.streams import CudaStreams
from solution.server.config import DEFAULT_MODEL_CONFIG, Settings
from solution.server.engine.engine import Engine
from solution.server.engine.limits import BatchingLimits
from solution.standins.corpus import reference_texts

from .checks import LabelSets, check_result
from .engine_target import EngineTarget
from .gpu_report import Record
from .load import Outcome, closed_loop, open_loop
from .peers import limit, winner
from .scenarios import Scenario, Stage
from .stats import format_summary

# The served models' architecture (shared/models.md): what "base size" means.
BASE_DIMS = dict(
    hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072
)
FP32_TOLERANCE = 1e-3  # relative logit error, fp32 on the device vs fp32 on the CPU
HALF_TOLERANCE = {"float16": 1e-2, "bfloat16": 5e-2}  # bf16 keeps 8 mantissa bits to fp16's 11
HALF_AGREEMENT = 0.98  # top-1 agreement with fp32; near-ties may flip
GRAPH_TOLERANCE = 1e-3  # graph replay vs eager at the same shape: the same kernels
TIMING_BATCHES = (1, 8, 32, 128)


@dataclass(frozen=True)
class Setup:
    """What every step runs with."""

    args: argparse.Namespace
    device: torch.device
    half: torch.dtype  # fp16 on CUDA; bf16 for the CPU smoke test
    capture: Any  # None: CUDA graphs; graphs.capture_eager on the CPU


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--standins", type=Path, default=Path(".cache/standins-tiny"))
    parser.add_argument("--out", type=Path, required=True, help="folder for the JSON and Markdown")
    parser.add_argument("--seconds", type=float, default=8.0, help="per engine/peer load level")
    parser.add_argument("--users", type=int, default=256, help="closed-loop users at saturation")
    parser.add_argument("--limit-batches", default="1,8,32,64,128")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="per limit batch size")
    parser.add_argument("--texts", type=int, default=1024)
    parser.add_argument("--parity-texts", type=int, default=96)
    parser.add_argument("--waits", default="0,1,2", help="CLS_MAX_WAIT_MS values to sweep")
    parser.add_argument("--timing-batches", default=",".join(map(str, TIMING_BATCHES)))
    parser.add_argument("--capture-budget-s", type=float, default=30.0, help="per capture")
    parser.add_argument("--graph-rows", type=int, default=128, help="largest captured batch")
    parser.add_argument("--graph-length", type=int, default=512, help="largest captured length")
    parser.add_argument("--budget-s", type=float, default=240.0, help="skip steps past this")
    parser.add_argument("--as-is", action="store_true", help="speed steps on the stand-ins' size")
    parser.add_argument("--allow-cpu", action="store_true", help="smoke-test this script on cpu")
    return parser.parse_args(argv)


def missing_inputs(standins: Path) -> list[str]:
    """What the run cannot do without, each named with how to get it."""
    missing = []
    for spec in load_model_specs(DEFAULT_MODEL_CONFIG):
        folder = standins / spec.key
        for name in ("config.json", "tokenizer.json", "model.safetensors"):
            if not (folder / name).is_file():
                missing.append(f"{folder / name}")
    return missing


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    half = torch.float16 if cuda else torch.bfloat16
    doc: dict[str, Any] = {
        "command": [sys.executable, "-m", "solution.benchmarks.gpu_check", *sys.argv[1:]],
        "device": torch.cuda.get_device_name(0) if cuda else "cpu (smoke test, not a GPU result)",
        "smoke_test": not cuda,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "dtype": str(half).removeprefix("torch."),
        "standins": str(args.standins),
        "hf_hub_offline": os.environ.get("HF_HUB_OFFLINE"),
    }
    if cuda:
        free, total = torch.cuda.mem_get_info()
        doc["gpu"] = {
            "capability": ".".join(map(str, torch.cuda.get_device_capability(0))),
            "memory_gib": round(total / 2**30, 1),
            "free_gib": round(free / 2**30, 1),
        }
    smoke = args.allow_cpu and not cuda
    record = Record(args.out, "gpu-check-cpu-smoke" if smoke else "gpu-check", doc)
    missing = ([] if cuda or args.allow_cpu else ["a CUDA device"]) + missing_inputs(args.standins)
    if missing:
        doc["missing"] = missing
        record.check("inputs present", False, "missing: " + ", ".join(missing))
        record.save()
        print("gpu_check cannot run; missing:\n  " + "\n  ".join(missing), file=sys.stderr)
        print(
            f"build the stand-ins with: python -m solution.standins --size tiny {args.standins}",
            file=sys.stderr,
        )
        return 2
    setup = Setup(args, device, half, None if cuda else capture_eager)
    texts = reference_texts(args.texts, seed=0)

    with record.step("parity") as result:
        parity(result, record, setup)
    with record.step("sync_debug") as result:
        sync_debug(result, record, setup)

    models: list[LoadedModel] = []
    with record.step("base_models") as result:
        models = build_models(args.standins, device, half, args.as_is)
        result["models"] = [m.key for m in models]
        config: Any = models[0].model.config
        result["hidden_size"] = int(config.hidden_size)
    if not models:
        return finish(record)
    speed_steps(record, setup, models, families_of(models), texts)
    return finish(record)


def finish(record: Record) -> int:
    record.save()
    print((record.out / f"{record.name}.md").read_text())
    return 0 if record.passed() else 1


def capture_args(setup: Setup) -> dict[str, Any]:
    return {
        "max_rows": setup.args.graph_rows,
        "max_length": setup.args.graph_length,
        "time_budget_s": setup.args.capture_budget_s,
        "capture": setup.capture,
    }


# ---- models ---------------------------------------------------------------------------------


def build_models(
    folder: Path, device: torch.device, dtype: torch.dtype, as_is: bool = False
) -> list[LoadedModel]:
    """Base-size models with random weights, from the stand-ins' configs and tokenizers (their
    embedding tables have the stand-in vocabulary: a lookup, it does not change the compute)."""
    specs = load_model_specs(DEFAULT_MODEL_CONFIG, str(folder))
    if as_is:
        return load_models(specs, device, dtype, 512)
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    models = []
    for i, spec in enumerate(specs):
        config = AutoConfig.from_pretrained(spec.source)
        config.update(BASE_DIMS)
        torch.manual_seed(i)
        with device:  # initialise on the device: seconds on a CPU for 85M parameters
            model = AutoModelForSequenceClassification.from_config(config, dtype=dtype)
        model.eval()
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


def families_of(models: list[LoadedModel]) -> list[Family]:
    return group_families(
        [m.tokenizer for m in models], [m.key for m in models], [m.max_tokens for m in models]
    )


def release() -> None:
    """Give back what the caller dropped (models, graphs' pools) before the next step loads."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---- 1. parity ------------------------------------------------------------------------------


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
    """The service's path for ``texts``: dedupe, plan micro-batches, run; logits per text."""
    unique, row_of_text = batching.dedupe(texts)
    ids = [f.encode(unique) for f in families]
    plan = planning.plan(ids, families, range(len(unique)), 256, 16)
    out = runner.run(plan.work, len(unique))
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
    for path, per_model in comparisons.items():
        if path.startswith("float32"):
            over = sum(c["rows_over"] for c in per_model.values())
            record.check(
                f"parity {path}: every row within {FP32_TOLERANCE}", over == 0, f"{over} rows over"
            )
        else:  # rounding: judged on each model's whole output; rows are reported
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


# ---- 2. no host sync before the batch's one copy --------------------------------------------


def sync_debug(result: dict[str, Any], record: Record, setup: Setup) -> None:
    args, device = setup.args, setup.device
    if device.type != "cuda":
        result["status"] = "skipped"
        result["why"] = "needs CUDA (the CPU tests probe for host reads instead)"
        return
    specs = load_model_specs(DEFAULT_MODEL_CONFIG, str(args.standins))
    models = load_models(specs, device, setup.half, 512)
    families = families_of(models)
    runner = Runner(models, device)
    runner.prepare("on", max_rows=16, max_length=args.graph_length, capture=setup.capture)
    texts = parity_texts(16)
    for path, graphs in (("eager", False), ("graphs", True)):
        runner.use_graphs = graphs
        run_texts(runner, families, texts)  # warm: lazy initialisation may sync, once
        torch.cuda.set_sync_debug_mode("error")
        try:
            run_texts(runner, families, texts)
            result[path] = "no sync before the batch's copy"
            record.check(f"no host sync ({path})", True)
        except RuntimeError as exc:
            result[path] = f"synchronised: {exc}"
            record.check(f"no host sync ({path})", False, str(exc)[:300])
        finally:
            torch.cuda.set_sync_debug_mode(0)
    del runner, models
    release()


# ---- 3. speed ---------------------------------------------------------------------------------


Step = tuple[str, Callable[[dict[str, Any]], Any]]


def run_steps(record: Record, args: argparse.Namespace, steps: list[Step]) -> None:
    """Each step in turn; once the run is past its budget, the rest are recorded as skipped."""
    for name, step in steps:
        if record.elapsed() > args.budget_s:
            record.skip(name, f"run past its {args.budget_s:.0f} s budget")
            continue
        with record.step(name) as result:
            step(result)


def speed_steps(
    record: Record,
    setup: Setup,
    models: list[LoadedModel],
    families: list[Family],
    texts: list[str],
) -> None:
    args = setup.args
    runner = Runner(models, setup.device)
    steps: list[Step] = [
        ("capture", partial(capture_step, runner=runner, setup=setup)),
        (
            "graphs_vs_eager",
            partial(graphs_vs_eager, record=record, runner=runner, families=families),
        ),
        ("timing", partial(timing, args=args, runner=runner, families=families, texts=texts)),
        ("limit", partial(bare_limit, args=args, models=models, families=families, texts=texts)),
    ]
    run_steps(record, args, steps)
    steps.clear()
    del runner  # its graphs' pools go before the engine captures its own
    release()

    def engine(r: dict[str, Any]) -> None:
        r.update(asyncio.run(drive_engine(setup, models, families, texts)))

    def peer(r: dict[str, Any]) -> None:
        r.update(asyncio.run(drive_winner(args, models, texts)))

    run_steps(record, args, [("engine", engine), ("winner", peer)])
    sat = record.doc["steps"].get("engine", {}).get("saturation", {}).get("throughput_rps")
    if sat and args.waits:
        waits = [float(w) for w in args.waits.split(",")]

        def sweep(r: dict[str, Any]) -> None:
            r.update(asyncio.run(sweep_waits(setup, models, families, texts, sat, waits)))

        run_steps(record, args, [("max_wait_sweep", sweep)])
    targets(record)


def capture_step(result: dict[str, Any], *, runner: Runner, setup: Setup) -> None:
    result.update(runner.prepare("on", **capture_args(setup)))


def bucket_call(family: Family, vocab: int, rows: int, length: int, seed: int) -> ForwardCall:
    """``rows`` random texts, the first ``length`` tokens long, the others shorter."""
    rng = np.random.default_rng(seed)
    lengths = [length, *rng.integers(1, length + 1, size=rows - 1).tolist()]
    seqs = [rng.integers(3, vocab, size=n).tolist() for n in lengths]
    return planning.forward_call(seqs, range(rows), family.pad_id)


def graphs_vs_eager(
    result: dict[str, Any], *, record: Record, runner: Runner, families: list[Family]
) -> None:
    """Every captured bucket, graph replay against the eager forward of the same call."""
    configs: list[Any] = [m.model.config for m in runner.models]
    vocabs = [min(int(configs[m].vocab_size) for m in f.members) for f in families]
    worst: dict[str, float] = {m.key: 0.0 for m in runner.models}
    over = 0
    for i, (rows, length) in enumerate(runner.shapes):
        calls = [bucket_call(f, v, rows, length, i) for f, v in zip(families, vocabs, strict=True)]
        work = [FamilyWork(list(f.members), [c]) for f, c in zip(families, calls, strict=True)]
        outputs = []
        for graphs in (True, False):
            runner.use_graphs = graphs
            outputs.append(runner.run(work, rows).logits)
        graph, eager = outputs
        for m, model in enumerate(runner.models):
            n = runner.num_labels[m]
            rel = np.linalg.norm(graph[m, :, :n] - eager[m, :, :n], axis=1) / np.maximum(
                np.linalg.norm(eager[m, :, :n], axis=1), 1e-6
            )
            worst[model.key] = max(worst[model.key], float(rel.max()))
            over += int((rel > GRAPH_TOLERANCE).sum())
    runner.use_graphs = True
    result.update(buckets=len(runner.shapes), max_rel_error=worst, rows_over=over)
    record.check(
        "graphs vs eager on every bucket",
        over == 0 and bool(runner.shapes),
        f"{len(runner.shapes)} buckets x {len(runner.models)} models, {over} rows over "
        f"{GRAPH_TOLERANCE}",
    )


def timed(runner: Runner, work: list[FamilyWork], rows: int, cuda: bool) -> dict[str, float | None]:
    start = end = None
    if cuda:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
    out = runner.run(work, rows)
    span = None
    if start is not None and end is not None:
        end.record()
        end.synchronize()
        span = start.elapsed_time(end)
    return {
        "enqueue_ms": 1000 * out.enqueue_s,
        "wall_ms": 1000 * out.wall_s,
        "gpu_span_ms": span,
        "gpu_model_sum_ms": 1000 * sum(out.gpu_seconds),
    }


def timing(
    result: dict[str, Any],
    *,
    args: argparse.Namespace,
    runner: Runner,
    families: list[Family],
    texts: list[str],
) -> None:
    device = runner.device
    cuda = device.type == "cuda"
    one_stream = Runner(
        runner.models, device, ops=CudaStreams(device, per_model=False) if cuda else None
    )
    one_stream.use_graphs = False
    rows_out = []
    for batch in [int(b) for b in args.timing_batches.split(",")]:
        chunk = texts[:batch]
        ids = [f.encode(chunk) for f in families]
        work = planning.plan(ids, families, range(batch), 1 << 20, batch).work  # one call each
        variants = [
            ("eager, one stream", one_stream, False),
            ("eager, five streams", runner, False),
        ]
        variants.append(("graphs", runner, True))
        for path, r, graphs in variants:
            r.use_graphs = graphs
            for _ in range(2):
                r.run(work, batch)  # warm-up
            samples = [timed(r, work, batch, cuda) for _ in range(5 if not cuda else 20)]
            row: dict[str, Any] = {"batch": batch, "path": path}
            for field in samples[0]:
                values = [v for s in samples if (v := s[field]) is not None]
                row[field] = statistics.median(values) if values else None
            if graphs:  # a call outside the buckets runs eager even on the graph path
                shapes = [c.input_ids.shape for w in work for c in w.calls]
                row["in_graphs"] = all(
                    buckets.choose(n, length, r.shapes, r.grid) is not None for n, length in shapes
                )
            rows_out.append(row)
        runner.use_graphs = True
    result["rows"] = rows_out


def bare_limit(
    result: dict[str, Any],
    *,
    args: argparse.Namespace,
    models: list[LoadedModel],
    families: list[Family],
    texts: list[str],
) -> None:
    ids = [f.encode(texts) for f in families]
    sizes = [int(b) for b in args.limit_batches.split(",")]
    runs = [limit.measure(models, families, ids, b, args.min_seconds, 0) for b in sizes]
    result["runs"] = runs
    result["best"] = max(runs, key=lambda r: r["tokens_per_s"])


async def drive_engine(
    setup: Setup, models: list[LoadedModel], families: list[Family], texts: list[str]
) -> dict[str, Any]:
    args = setup.args
    labels: LabelSets = {m.key: frozenset(m.labels) for m in models}
    limits = BatchingLimits.from_settings(Settings(), setup.device.type)
    engine = Engine(models, families, setup.device, limits)
    # as app.build_engine does: the one call beyond the engine's public API
    out: dict[str, Any] = {"capture": engine.runner.prepare("on", **capture_args(setup))}
    engine.start()
    await engine.warm_up(texts[:8])
    target = EngineTarget(engine, texts, labels, "engine")
    for users, name in ((1, "low_load"), (args.users, "saturation")):
        warmup = args.seconds / 4 if users > 1 else 0.0
        tally = await closed_loop(target, users, args.seconds, warmup_s=warmup)
        out[name] = {"users": users, **tally.summary()}
        print(format_summary(f"engine {users} users", out[name]), file=sys.stderr)
    await asyncio.to_thread(engine.stop)
    return out


class ClassifyTarget:
    """An in-process ``classify(text)`` (the winner-style peer) as a load target."""

    def __init__(
        self, classify: Callable[[str], Awaitable[Any]], texts: list[str], labels: LabelSets
    ):
        self.classify = classify
        self.texts = texts
        self.payloads = len(texts)
        self.labels = labels
        self.name = "winner-style"
        self.broken = False

    async def connect(self) -> ClassifyTarget:
        return self

    async def aclose(self) -> None:
        return None

    async def send(self, index: int) -> Outcome:
        return check_result(await self.classify(self.texts[index]), self.labels)

    def close(self) -> None:
        return None


async def drive_winner(
    args: argparse.Namespace, models: list[LoadedModel], texts: list[str]
) -> dict[str, Any]:
    labels: LabelSets = {m.key: frozenset(m.labels) for m in models}
    target = ClassifyTarget(winner.make_classify(models), texts, labels)
    tally = await closed_loop(target, args.users, args.seconds, warmup_s=args.seconds / 4)
    out = {"saturation": {"users": args.users, **tally.summary()}}
    print(format_summary(f"winner-style {args.users} users", out["saturation"]), file=sys.stderr)
    return out


async def sweep_waits(
    setup: Setup,
    models: list[LoadedModel],
    families: list[Family],
    texts: list[str],
    saturation_rps: float,
    waits_ms: list[float],
) -> dict[str, Any]:
    """CLS_MAX_WAIT_MS at half the saturation rate, a fresh engine (eager) per wait."""
    args, device = setup.args, setup.device
    labels: LabelSets = {m.key: frozenset(m.labels) for m in models}
    rate = saturation_rps / 2
    scenario = Scenario("sweep", f"{rate:.1f}/s", rate, (Stage(args.seconds / 2, rate),))
    out: dict[str, Any] = {"rate_rps": rate}
    for wait in waits_ms:
        limits = BatchingLimits.from_settings(Settings(max_wait_ms=wait), device.type)
        engine = Engine(models, families, device, limits)
        engine.start()
        await engine.warm_up(texts[:8])
        target = EngineTarget(engine, texts, labels, f"engine wait {wait:g} ms")
        tally = await open_loop(target, scenario.arrivals(), max_vus=1024)
        out[f"{wait:g}"] = tally.summary()
        await asyncio.to_thread(engine.stop)
    return out


def targets(record: Record) -> None:
    """The issue's targets, as ratios from this run."""
    steps = record.doc["steps"]
    rows = {(r["batch"], r["path"]): r for r in steps.get("timing", {}).get("rows", [])}
    eager, graph = rows.get((1, "eager, five streams")), rows.get((1, "graphs"))
    if eager and graph:
        ratio = eager["enqueue_ms"] / graph["enqueue_ms"]
        record.target(
            "host time per call set at batch 1, eager / graphs", ratio, ">= 3", ratio >= 3
        )
    engine = steps.get("engine", {})
    p50 = engine.get("low_load", {}).get("latency_ms", {}).get("p50")
    if p50 is not None and graph:
        bound = 1.5 * graph["wall_ms"] + 2.0
        record.target(
            "low-load p50 / (1.5 x graph replay of the five models + 2 ms)",
            p50 / bound,
            f"<= 1 (p50 {p50:.1f} ms, replay {graph['wall_ms']:.2f} ms)",
            p50 <= bound,
        )
    sat = engine.get("saturation", {}).get("throughput_rps")
    best = steps.get("limit", {}).get("best", {}).get("texts_per_s")
    if sat and best:
        name = f"saturation / bare {record.doc['dtype']} limit at its best batch"
        record.target(name, sat / best, ">= 0.95", sat / best >= 0.95)
    peer = steps.get("winner", {}).get("saturation", {}).get("throughput_rps")
    if sat and peer:
        record.target("saturation / winner-style peer", sat / peer, ">= 2", sat / peer >= 2)
    for name in ("engine", "winner"):
        for level, run in steps.get(name, {}).items():
            if isinstance(run, dict) and "failed" in run:
                record.check(
                    f"{name} {level}: no failed request",
                    run["failed"] == 0,
                    f"{run['failed']} failed of {run['sent']}",
                )
    record.save()


if __name__ == "__main__":
    sys.exit(main())
