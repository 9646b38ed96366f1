"""The served benchmark's model folders (``served/models.py``): on a GPU it writes base-size
models to disk before it starts the server, a step no CPU run of the benchmark takes. Here at a
small size (the same code with smaller dimensions): the folders load through the server's own
loader, with the stand-ins' labels, tokenizers and architecture."""

from __future__ import annotations

import torch

from solution.benchmarks.gpu_check import common
from solution.benchmarks.served.models import write_base_models
from solution.server.compute.models import load_model_specs, load_models
from solution.server.config import DEFAULT_MODEL_CONFIG

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def test_written_models_load_like_any_model_folder(tmp_path, standins_tiny, monkeypatch):
    monkeypatch.setattr(common, "BASE_DIMS", SMALL)
    cpu, folder = torch.device("cpu"), tmp_path / "models"
    (folder / "stale").mkdir(parents=True)  # a folder left by an earlier run is replaced
    assert write_base_models(standins_tiny, folder, cpu, torch.float16) == folder

    specs = load_model_specs(DEFAULT_MODEL_CONFIG, str(folder))  # a folder missing would raise
    assert sorted(p.name for p in folder.iterdir()) == sorted(s.key for s in specs)
    written = load_models(specs, cpu, torch.float16, 512)
    standins = load_models(
        load_model_specs(DEFAULT_MODEL_CONFIG, str(standins_tiny)), cpu, torch.float32, 512
    )
    text = "the served benchmark's models, written and read back"
    for model, standin in zip(written, standins, strict=True):
        config = model.model.config
        assert {k: getattr(config, k) for k in SMALL} == SMALL
        assert type(model.model) is type(standin.model)
        assert model.labels == standin.labels
        assert model.tokenizer(text)["input_ids"] == standin.tokenizer(text)["input_ids"]
