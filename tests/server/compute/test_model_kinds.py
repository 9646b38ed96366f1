"""Any sequence classifier: a multi-label model answers sigmoid scores (its threshold applied to
ranked lists), a regression head its value, beside an ordinary softmax model in one engine; the
scoring function comes from the model's config or from models.json, and what cannot be served is
refused at load with one line (``tests/e2e/test_startup.py`` runs that refusal as a process)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import torch
from transformers import PretrainedConfig

from solution.server import config
from solution.server.app import build_engine
from solution.server.compute.models import (
    ModelLoadError,
    ModelSpec,
    load_model_specs,
    resolve_function,
)
from solution.server.compute.scoring import Prediction
from solution.server.engine.engine import Engine
from solution.server.engine.options import Options
from tests.model_kinds import TOPICS, build_kinds

TEXTS = ["Ce film est magnifique", "FREE bitcoin giveaway, click", "", "Это был лучший концерт"]


@pytest.fixture(scope="module")
def kinds(standins_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("kinds")
    return out, build_kinds(standins_tiny, out)


@pytest.fixture(scope="module")
async def kinds_engine(kinds: tuple[Path, Path]) -> AsyncIterator[Engine]:
    folder, models_json = kinds
    settings = config.load(
        [],
        environ={
            "CLS_MODELS_DIR": str(folder),
            "CLS_MODEL_CONFIG": str(models_json),
            "CLS_DEVICE": "cpu",
        },
    )
    engine = await asyncio.to_thread(build_engine, settings)
    engine.start()
    await engine.warm_up(["warm"])
    yield engine
    engine.stop()


def logits_alone(engine: Engine, key: str, text: str) -> torch.Tensor:
    m = engine.models[engine.keys.index(key)]
    enc = m.tokenizer(text, truncation=True, max_length=m.max_tokens, return_tensors="pt")
    with torch.inference_mode():
        return m.model(**enc).logits.float()[0]


async def test_each_kind_gets_its_function_from_its_config(kinds_engine: Engine):
    assert [(m.key, m.function) for m in kinds_engine.models] == [
        ("sentiment", "softmax"),
        ("topics", "sigmoid"),
        ("score", "none"),
    ]
    assert kinds_engine.models[1].labels == TOPICS


async def test_multi_label_scores_are_sigmoids_and_the_threshold_filters_rankings(
    kinds_engine: Engine,
):
    default, every = await asyncio.gather(
        kinds_engine.submit(TEXTS), kinds_engine.submit(TEXTS, options=Options(top_k=None))
    )
    kept_some = left_some = False
    for text, one, ranked in zip(TEXTS, default, every, strict=True):
        sig = logits_alone(kinds_engine, "topics", text).sigmoid()
        best = int(sig.argmax())
        top = one["topics"]
        assert isinstance(top, Prediction) and top.label == TOPICS[best]
        assert top.score == pytest.approx(float(sig[best]), abs=1e-4)
        listed = ranked["topics"]
        assert isinstance(listed, list)
        expected = [TOPICS[i] for i in sig.argsort(descending=True) if sig[i] >= 0.5]
        assert [p.label for p in listed] == expected
        for p in listed:
            assert p.score == pytest.approx(float(sig[TOPICS.index(p.label)]), abs=1e-4)
        kept_some |= bool(listed)
        left_some |= len(listed) < len(TOPICS)
        # the softmax model beside it still answers probabilities that sum to 1
        assert sum(p.score for p in ranked["sentiment"]) == pytest.approx(1, abs=1e-5)
    assert kept_some and left_some, "the texts should exercise both sides of the threshold"


async def test_a_regression_head_answers_its_value(kinds_engine: Engine):
    default, raw, ranked = await asyncio.gather(
        kinds_engine.submit(TEXTS),
        kinds_engine.submit(TEXTS, options=Options(raw_scores=True, models=("score",))),
        kinds_engine.submit(TEXTS, options=Options(top_k=None, models=("score",))),
    )
    values = [float(logits_alone(kinds_engine, "score", t)[0]) for t in TEXTS]
    assert len(set(round(v, 4) for v in values)) > 1  # the value depends on the text
    for value, one, as_raw, as_list in zip(values, default, raw, ranked, strict=True):
        assert one["score"] == Prediction(pytest.approx(value, abs=1e-4), "LABEL_0")
        assert as_raw == {"score": one["score"]}  # raw and the value are the same number
        assert as_list == {"score": [one["score"]]}


def _config(**kwargs) -> PretrainedConfig:
    return PretrainedConfig(**kwargs)


@pytest.mark.parametrize(
    "cfg, function, expected",
    [
        (_config(num_labels=3), None, "softmax"),
        (_config(num_labels=3, problem_type="single_label_classification"), None, "softmax"),
        (_config(num_labels=3, problem_type="multi_label_classification"), None, "sigmoid"),
        (_config(num_labels=1), None, "none"),
        (_config(num_labels=2, problem_type="regression"), None, "none"),
        (_config(num_labels=3), "sigmoid", "sigmoid"),  # models.json decides over the config
        (_config(num_labels=3, problem_type="multi_label_classification"), "none", "none"),
    ],
)
def test_the_scoring_function_comes_from_models_json_else_the_config(cfg, function, expected):
    assert resolve_function(cfg, ModelSpec("k", "s", function=function)) == expected


@pytest.mark.parametrize(
    "cfg, spec, message",
    [
        (_config(num_labels=1), ModelSpec("k", "s", function="softmax"), "softmax over one"),
        (_config(num_labels=3), ModelSpec("k", "s", threshold=0.5), "threshold applies to sig"),
    ],
)
def test_what_cannot_give_a_meaningful_score_is_refused(cfg, spec, message):
    with pytest.raises(ValueError, match=message):
        resolve_function(cfg, spec)


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"key": "a", "source": "b", "function": "relu"}, "function 'relu': use one of softmax"),
        ({"key": "a", "source": "b", "threshold": 2}, "threshold 2: a number from 0 to 1"),
        ({"key": "a", "source": "b", "threshold": True}, "threshold True: a number"),
        ({"key": "a", "source": "b", "top_k": 3}, "unknown field 'top_k'; the fields are"),
    ],
)
def test_bad_scoring_fields_in_models_json_say_what_is_wrong(tmp_path, entry, message):
    path = tmp_path / "models.json"
    path.write_text(json.dumps({"models": [entry]}))
    with pytest.raises(ValueError, match=f"entry 0: {message}"):
        load_model_specs(path)


async def test_an_unservable_model_is_refused_at_load_with_one_line(kinds: tuple[Path, Path]):
    folder, _ = kinds
    models_json = folder / "softmax-of-one.json"
    models_json.write_text(
        json.dumps({"models": [{"key": "score", "source": "x", "function": "softmax"}]})
    )
    settings = config.load(
        [],
        environ={
            "CLS_MODELS_DIR": str(folder),
            "CLS_MODEL_CONFIG": str(models_json),
            "CLS_DEVICE": "cpu",
        },
    )
    with pytest.raises(ModelLoadError) as info:
        await asyncio.to_thread(build_engine, settings)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"cannot serve model 'score' from '{folder / 'score'}'")
    assert 'a softmax over one output is always 1; set "function": "none"' in message
