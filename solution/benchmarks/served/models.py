"""Base-size models on disk for the server: what ``gpu_check`` builds in memory (the stand-ins'
configs at the served architecture, random weights), saved with their tokenizers so that
``python -m solution.server`` and the peer load them like any model folder."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from ..gpu_check.common import build_models


def write_base_models(
    standins: Path, folder: Path, device: torch.device, dtype: torch.dtype
) -> Path:
    """``folder/<key>`` for each model: config.json, model.safetensors and the tokenizer files."""
    if folder.exists():
        shutil.rmtree(folder)
    for loaded in build_models(standins, device, dtype):
        target = folder / loaded.key
        model: Any = loaded.model  # a transformers PreTrainedModel
        model.save_pretrained(target)
        loaded.tokenizer.save_pretrained(target)
        del loaded
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return folder
