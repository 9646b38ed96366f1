"""Step 2: one batch under ``torch.cuda.set_sync_debug_mode("error")``, eager and through graphs.
The runner's only wait is the batch's one device-to-host copy (on an event, which the debug mode
does not report); any other host sync raises there and is recorded with its message."""

from __future__ import annotations

from typing import Any

import torch

from solution.server.compute.models import load_model_specs, load_models
from solution.server.compute.runner import Runner
from solution.server.config import DEFAULT_MODEL_CONFIG

from ..gpu_report import Record
from .common import Setup, families_of, release
from .parity import parity_texts, run_texts


def sync_debug(result: dict[str, Any], record: Record, setup: Setup) -> None:
    args, device = setup.args, setup.device
    if device.type != "cuda":
        result["status"] = "skipped"
        result["why"] = "needs CUDA (the CPU tests probe for host reads instead)"
        return
    specs = load_model_specs(DEFAULT_MODEL_CONFIG, str(args.standins))
    models = load_models(specs, device, setup.half, 512)
    families = families_of(models)
    eager = Runner(models, device)  # never prepared: every call eager
    graphs = Runner(models, device)
    graphs.prepare("on", max_rows=16, max_length=args.graph_length, capture=setup.capture)
    texts = parity_texts(16)
    for path, runner in (("eager", eager), ("graphs", graphs)):
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
    del eager, graphs, models
    release()
