"""The served models, as configuration: which to load, from where, and what their labels read.

``load_model_specs`` reads the JSON model config (key, source, label overrides);
``load_models`` loads each through the ordinary ``from_pretrained`` path (a hub id or a local
folder, the stand-ins included) and resolves its label names once, so the hot path only indexes a
tuple.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedTokenizerBase,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    """One entry of the model config: the response key, where to load from, label overrides."""

    key: str
    source: str
    labels: dict[int, str] = field(default_factory=dict)
    revision: str | None = None


@dataclass
class LoadedModel:
    spec: ModelSpec
    tokenizer: PreTrainedTokenizerBase
    model: torch.nn.Module
    labels: tuple[str, ...]  # index -> label as the API answers it
    max_tokens: int  # tokens per text this model accepts, special tokens included

    @property
    def key(self) -> str:
        return self.spec.key


def load_model_specs(config_path: str | Path, models_dir: str = "") -> list[ModelSpec]:
    """Parse the model config; a ``models_dir/<key>`` folder, when present, replaces the source."""
    path = Path(config_path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        entries = raw["models"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"model config {path}: expected {{'models': [...]}} ({exc})") from exc
    specs: list[ModelSpec] = []
    for i, entry in enumerate(entries):
        try:
            key, source = str(entry["key"]), str(entry["source"])
            labels = {int(k): str(v) for k, v in (entry.get("labels") or {}).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"model config {path}, entry {i}: {exc!r}") from exc
        if models_dir and (Path(models_dir) / key).is_dir():
            source = str(Path(models_dir) / key)
        specs.append(ModelSpec(key, source, labels, entry.get("revision")))
    keys = [s.key for s in specs]
    if not specs or len(set(keys)) != len(keys):
        raise ValueError(f"model config {path}: needs at least one model and unique keys: {keys}")
    return specs


def resolve_labels(config: PretrainedConfig, overrides: dict[int, str]) -> tuple[str, ...]:
    """Label per class index: the config's ``id2label`` (``LABEL_i`` when it has none), then the
    configured overrides. ``label2id`` is never read: published configs have it as strings or null.
    """
    num: int = config.num_labels or 0
    id2label: dict[Any, Any] = getattr(config, "id2label", None) or {}
    labels = [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(num)]
    for index, label in overrides.items():
        if not 0 <= index < num:
            raise ValueError(f"label override for index {index}, but the model has {num} labels")
        labels[index] = label
    return tuple(labels)


def _position_limit(config: PretrainedConfig) -> int:
    """Tokens a text may have. RoBERTa-style models number positions from pad_token_id + 1, so
    514 position embeddings hold 512 tokens."""
    limit = int(getattr(config, "max_position_embeddings", 512))
    if "roberta" in str(getattr(config, "model_type", "")):
        limit -= int(getattr(config, "pad_token_id", 1) or 0) + 1
    return limit


def load_models(
    specs: list[ModelSpec], device: torch.device, dtype: torch.dtype, max_text_tokens: int
) -> list[LoadedModel]:
    loaded = []
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    for spec in specs:
        kwargs: dict[str, Any] = {"revision": spec.revision} if spec.revision else {}
        try:
            config = AutoConfig.from_pretrained(spec.source, **kwargs)
            tokenizer = AutoTokenizer.from_pretrained(spec.source, **kwargs)
            model = AutoModelForSequenceClassification.from_pretrained(
                spec.source, config=config, dtype=dtype, **kwargs
            )
        except OSError as exc:
            raise OSError(f"cannot load model {spec.key!r} from {spec.source!r}: {exc}") from exc
        model.to(device).eval()
        loaded.append(
            LoadedModel(
                spec=spec,
                tokenizer=tokenizer,
                model=model,
                labels=resolve_labels(config, spec.labels),
                max_tokens=min(max_text_tokens, _position_limit(config)),
            )
        )
        log.info(
            "model loaded",
            extra={
                "key": spec.key,
                "source": spec.source,
                "labels": len(loaded[-1].labels),
                "offline": offline,
            },
        )
    return loaded
