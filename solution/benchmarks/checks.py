"""The reference client's response checks: status 200, the five keys, ``score > 0``, the label in
its model's label set.

Label sets are never copied here: they are resolved the way the service resolves them, from each
model's config (``CLS_MODELS_DIR/<key>/config.json`` when a models folder is given, else the
stand-in definitions, which carry the published label sets) plus the label overrides of the model
config file (``solution/server/models.json``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from solution.server.config import DEFAULT_MODEL_CONFIG

LabelSets = dict[str, frozenset[str]]  # response key -> labels the API may answer


def expected_labels(
    model_config: str | Path = DEFAULT_MODEL_CONFIG, models_dir: str | Path | None = None
) -> LabelSets:
    """Response key -> allowed labels, in the configured response order."""
    # imported here: they pull in torch/transformers, which the summary code does not need
    from transformers import AutoConfig, PretrainedConfig

    from solution.server.compute.models import load_model_specs, resolve_labels
    from solution.standins.build import STANDINS

    standins = {s.key: s for s in STANDINS}
    sets: LabelSets = {}
    for spec in load_model_specs(model_config):
        folder = Path(models_dir) / spec.key if models_dir else None
        if folder is not None and (folder / "config.json").is_file():
            config = AutoConfig.from_pretrained(folder)
        elif spec.key in standins:
            s = standins[spec.key]
            config = PretrainedConfig(id2label=s.id2label) if s.id2label else PretrainedConfig()
            if not s.id2label:
                config.num_labels = s.num_labels  # LABEL_0.., as the published config implies
        else:
            raise ValueError(f"no label set known for {spec.key!r}: pass the models folder")
        sets[spec.key] = frozenset(resolve_labels(config, spec.labels))
    return sets


def check_result(result: Any, labels: LabelSets) -> tuple[str, str] | None:
    """None when one text's result passes; else (error kind, detail)."""
    if not isinstance(result, Mapping):
        return "check_shape", f"expected an object, got {type(result).__name__}"
    if set(result) != set(labels):
        missing = sorted(set(labels) - set(result))
        extra = sorted(set(result) - set(labels))
        return "check_keys", f"missing {missing}, unexpected {extra}"
    for key, allowed in labels.items():
        prediction = result[key]
        if not isinstance(prediction, Mapping):
            return "check_shape", f"{key}: expected an object"
        score = prediction.get("score")
        if isinstance(score, bool) or not isinstance(score, int | float) or not score > 0:
            return "check_score", f"{key}: score {score!r} is not a number > 0"
        if prediction.get("label") not in allowed:
            return "check_label", f"{key}: label {prediction.get('label')!r} not in its label set"
    return None


def check_http(status: int, body: bytes, labels: LabelSets) -> tuple[str, str] | None:
    """The HTTP answer to one ``POST /process`` with a single JSON string."""
    import orjson  # here: the GPU check imports this module where orjson may be absent

    if status != 200:
        return f"http_{status}", body[:200].decode("utf-8", "replace")
    try:
        result = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return "check_json", str(exc)
    return check_result(result, labels)
