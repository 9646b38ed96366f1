"""What every step of the GPU check shares: its settings, the base-size models, and the runner
calls the steps make (one place to change when the runner's API moves)."""

from __future__ import annotations

import argparse
import gc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from solution.server.compute.families import Family, group_families
from solution.server.compute.models import (
    LoadedModel,
    load_model_specs,
    load_models,
    resolve_labels,
)
from solution.server.compute.planning import FamilyWork
from solution.server.compute.runner import Runner, RunOutput
from solution.server.config import DEFAULT_MODEL_CONFIG

from ..gpu_report import Record

# The served models' architecture (shared/models.md): what "base size" means.
BASE_DIMS = dict(
    hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072
)


@dataclass(frozen=True)
class Setup:
    """What every step runs with."""

    args: argparse.Namespace
    device: torch.device
    half: torch.dtype  # fp16 on CUDA; bf16 for the CPU smoke test
    capture: Any  # None: CUDA graphs; graphs.capture_eager on the CPU


Step = tuple[str, Callable[[dict[str, Any]], Any]]


def run_steps(record: Record, args: argparse.Namespace, steps: list[Step]) -> None:
    """Each step in turn; once the run is past its budget, the rest are recorded as skipped."""
    for name, step in steps:
        if record.elapsed() > args.budget_s:
            record.skip(name, f"run past its {args.budget_s:.0f} s budget")
            continue
        with record.step(name) as result:
            step(result)


def missing_inputs(standins: Path) -> list[str]:
    """What the run cannot do without, each named with how to get it."""
    missing = []
    for spec in load_model_specs(DEFAULT_MODEL_CONFIG):
        folder = standins / spec.key
        for name in ("config.json", "tokenizer.json", "model.safetensors"):
            if not (folder / name).is_file():
                missing.append(f"{folder / name}")
    return missing


def capture_args(setup: Setup) -> dict[str, Any]:
    return {
        "max_rows": setup.args.graph_rows,
        "max_length": setup.args.graph_length,
        "time_budget_s": setup.args.capture_budget_s,
        "capture": setup.capture,
    }


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


def run_batch(runner: Runner, work: list[FamilyWork], rows: int) -> RunOutput:
    """One prepared batch through the runner, as the engine's compute thread runs it."""
    return runner.run(work, rows)


class ReplayCounter:
    """Counts the graph replays a runner makes: whether a call ran in a graph is read from what
    ran, not re-derived from the bucket rule (which the runner may change)."""

    def __init__(self, runner: Runner):
        self.count = 0
        for per_model in runner.graphs:
            for captured in per_model.values():
                captured.replay = self._counted(captured.replay)

    def _counted(self, replay: Callable[[], None]) -> Callable[[], None]:
        def counted() -> None:
            self.count += 1
            replay()

        return counted


def forwards_in(work: list[FamilyWork]) -> int:
    """Model forwards a batch's work makes: each call, once per member model."""
    return sum(len(w.calls) * len(w.members) for w in work)
