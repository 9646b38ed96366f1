"""The served models, as configuration: which to load, from where, and what their labels read.

``load_model_specs`` reads the JSON model config (key, source, label overrides);
``load_models`` loads each through the ordinary ``from_pretrained`` path (a hub id or a local
folder, the stand-ins included) and resolves its label names once, so the hot path only indexes a
tuple.

Every load failure is a ``ModelLoadError`` whose message is one line naming the model and what to
fix: a missing ``<models_dir>/<key>`` folder, a folder without the files the service needs, a
damaged file, or a hub that cannot be reached. The hub is probed once, quickly, before any hub
model loads; when it cannot be reached (or ``HF_HUB_OFFLINE`` is set, as the hub library reads it)
only the local cache is read, instead of the hub library retrying every file for half a minute.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import torch
from huggingface_hub import constants as hub_constants
from huggingface_hub import get_session
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedTokenizerBase,
)

log = logging.getLogger(__name__)

# What a model folder needs: the config, the fast tokenizer (the tokenizer families are built from
# it; without it transformers would silently convert a slow one), and the weights in some form.
REQUIRED_FILES = ("config.json", "tokenizer.json")
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
# The one hub probe: a reachable hub answers a HEAD within a second; an unreachable one fails at
# once (DNS, refused) or on this timeout (dropped packets).
HUB_PROBE_TIMEOUT_S = 3.0
REBUILD_HINT = (
    "rebuild the folder: make demo builds the stand-ins, "
    "python -m solution.server.fetch_models DIR downloads the real models"
)
OFFLINE_HINT = "without network, serve the offline stand-ins: make demo"
# How a model's logits become scores (Hugging Face pipeline's ``function_to_apply``): softmax for
# single-label classifiers, sigmoid for multi-label ones, none (the raw value) for regression.
FUNCTIONS = ("softmax", "sigmoid", "none")
SPEC_FIELDS = {"key", "source", "labels", "revision", "function", "threshold"}


class ModelLoadError(ValueError):
    """A model cannot be loaded; ``str()`` is one line naming the model and what to fix."""


@dataclass(frozen=True)
class ModelSpec:
    """One entry of the model config: the response key, where to load from, label overrides."""

    key: str
    source: str
    labels: dict[int, str] = field(default_factory=dict)
    revision: str | None = None
    function: str | None = None  # None: decided from the model's config
    threshold: float | None = None  # sigmoid models: labels below it are left out of ranked lists


@dataclass
class LoadedModel:
    spec: ModelSpec
    tokenizer: PreTrainedTokenizerBase
    model: torch.nn.Module
    labels: tuple[str, ...]  # index -> label as the API answers it
    max_tokens: int  # tokens per text this model accepts, special tokens included
    function: str = "softmax"  # one of FUNCTIONS
    architecture: str = ""  # the model class, as its config names it

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def threshold(self) -> float | None:
        """A sigmoid model's cut for ranked lists (``models.json``); None: no cut."""
        return self.spec.threshold


def load_model_specs(config_path: str | Path, models_dir: str = "") -> list[ModelSpec]:
    """Parse the model config. With ``models_dir``, every model loads from ``models_dir/<key>``:
    a missing folder is an error, never a silent fallback to the hub id (which, with a network,
    would download the real model instead)."""
    path = Path(config_path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        entries = raw["models"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"model config {path}: expected {{'models': [...]}} ({exc})") from exc
    specs: list[ModelSpec] = []
    for i, entry in enumerate(entries):
        try:
            spec = _spec(entry)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"model config {path}, entry {i}: {exc}") from None
        if models_dir:
            spec = ModelSpec(**{**spec.__dict__, "source": str(Path(models_dir) / spec.key)})
        specs.append(spec)
    keys = [s.key for s in specs]
    if not specs or len(set(keys)) != len(keys):
        raise ValueError(f"model config {path}: needs at least one model and unique keys: {keys}")
    if models_dir and not Path(models_dir).is_dir():
        raise ModelLoadError(f"CLS_MODELS_DIR={models_dir!r} is not a folder; {REBUILD_HINT}")
    missing = [s for s in specs if models_dir and not Path(s.source).is_dir()]
    if missing:
        raise ModelLoadError(
            f"CLS_MODELS_DIR={models_dir!r} has no folder for "
            f"{', '.join(repr(s.key) for s in missing)} (expected {missing[0].source}); "
            + REBUILD_HINT
        )
    return specs


def _spec(entry: Any) -> ModelSpec:
    if not isinstance(entry, dict):
        raise TypeError("expected an object with key and source")
    unknown = sorted(set(entry) - SPEC_FIELDS)
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r}; the fields are {sorted(SPEC_FIELDS)}")
    function = entry.get("function")
    if function is not None and function not in FUNCTIONS:
        raise ValueError(f"function {function!r}: use one of {', '.join(FUNCTIONS)}")
    threshold = entry.get("threshold")
    if threshold is not None and not (
        isinstance(threshold, int | float)
        and not isinstance(threshold, bool)
        and 0 <= threshold <= 1
    ):
        raise ValueError(f"threshold {threshold!r}: a number from 0 to 1")
    return ModelSpec(
        key=str(entry["key"]),
        source=str(entry["source"]),
        labels={int(k): str(v) for k, v in (entry.get("labels") or {}).items()},
        revision=entry.get("revision"),
        function=function,
        threshold=None if threshold is None else float(threshold),
    )


def resolve_function(config: PretrainedConfig, spec: ModelSpec) -> str:
    """The scoring function: the model config's entry, else what the model's config says it is
    (``problem_type``, one output for regression). Refuses what cannot give a meaningful score."""
    num = int(config.num_labels or 0)
    problem = getattr(config, "problem_type", None)
    if spec.function is not None:
        function = spec.function
    elif problem == "multi_label_classification":
        function = "sigmoid"
    elif problem == "regression" or num == 1:
        function = "none"
    else:
        function = "softmax"
    if num < 1:
        raise ValueError("the model has no outputs (num_labels is 0)")
    if function == "softmax" and num == 1:
        raise ValueError('a softmax over one output is always 1; set "function": "none"')
    if spec.threshold is not None and function != "sigmoid":
        raise ValueError(f"threshold applies to sigmoid (multi-label) models, not {function}")
    return function


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
    for spec in specs:  # every folder is checked before the first (slow) load
        if Path(spec.source).is_dir() and (problem := _folder_problem(Path(spec.source))):
            raise ModelLoadError(f"cannot load model {spec.key!r}: {problem}; {REBUILD_HINT}")
    offline = _hub_unavailable(specs)
    return [_load(spec, device, dtype, max_text_tokens, offline) for spec in specs]


def hub_reachable(timeout_s: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """One HEAD request to the hub through the hub library's own session, so ``HF_ENDPOINT`` and
    proxy settings apply. Any answer below 500 counts; a 5xx is what a proxy without upstream
    network answers, and what the hub library would retry for 20 s per file. It runs in a daemon
    thread so that a DNS lookup that hangs cannot hold start-up past ``timeout_s``."""
    answered: list[bool] = []

    def probe() -> None:
        try:
            status = get_session().head(hub_constants.ENDPOINT, timeout=timeout_s).status_code
            answered.append(status < 500)
        except (httpx.HTTPError, OSError):
            answered.append(False)

    thread = threading.Thread(target=probe, name="hub-probe", daemon=True)
    thread.start()
    thread.join(timeout_s)
    return answered == [True]


def _hub_unavailable(specs: list[ModelSpec]) -> str | None:
    """Why the hub must not be asked (offline mode, or the one probe failed); None when it can be
    asked or no model comes from it."""
    if all(Path(s.source).is_dir() for s in specs):
        return None
    if hub_constants.is_offline_mode():
        return "HF_HUB_OFFLINE is set"
    if not hub_reachable():
        log.warning("hub unreachable: loading from the local cache only")
        return f"the hub ({hub_constants.ENDPOINT}) is unreachable"
    return None


def _folder_problem(folder: Path) -> str | None:
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        missing.append(WEIGHT_FILES[0])
    return f"{folder} has no {', '.join(missing)}" if missing else None


def _load(
    spec: ModelSpec,
    device: torch.device,
    dtype: torch.dtype,
    max_text_tokens: int,
    offline: str | None,
) -> LoadedModel:
    local = Path(spec.source).is_dir()
    kwargs: dict[str, Any] = {"revision": spec.revision} if spec.revision else {}
    if offline and not local:
        kwargs["local_files_only"] = True
    try:
        config = AutoConfig.from_pretrained(spec.source, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(spec.source, **kwargs)
        model = AutoModelForSequenceClassification.from_pretrained(
            spec.source, config=config, dtype=dtype, **kwargs
        )
    except Exception as exc:  # whatever the loaders raise (OSError, SafetensorError, ...)
        log.debug("model load failed", exc_info=True)  # the traceback, for who asks for it
        raise ModelLoadError(_load_failure(spec, exc, local, offline)) from None
    try:
        function = resolve_function(config, spec)
        labels = resolve_labels(config, spec.labels)
    except ValueError as exc:
        raise ModelLoadError(
            f"cannot serve model {spec.key!r} from {spec.source!r}: {exc}"
        ) from None
    model.to(device).eval()
    loaded = LoadedModel(
        spec=spec,
        tokenizer=tokenizer,
        model=model,
        labels=labels,
        max_tokens=min(max_text_tokens, _position_limit(config)),
        function=function,
        architecture=next(iter(getattr(config, "architectures", None) or []), type(model).__name__),
    )
    log.info(
        "model loaded",
        extra={
            "key": spec.key,
            "source": spec.source,
            "labels": len(loaded.labels),
            "function": function,
            "offline": offline is not None,
        },
    )
    return loaded


def _load_failure(spec: ModelSpec, exc: Exception, local: bool, offline: str | None) -> str:
    """One line: the model, where from, why, and what to do."""
    where = f"cannot load model {spec.key!r} from {spec.source!r}"
    if offline and not local and isinstance(exc, OSError):  # not in the local cache
        return f"{where}: {offline} and the model is not in the local cache; {OFFLINE_HINT}"
    reason = " ".join(f"{type(exc).__name__}: {exc}".split())  # the loaders' text spans lines
    hint = REBUILD_HINT if local else f"check its hub id in the model config; {OFFLINE_HINT}"
    return f"{where}: {reason}; {hint}"
