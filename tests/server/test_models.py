"""The model config and label resolution: the API contract of the five default models."""

from __future__ import annotations

import json

import pytest
from transformers import AutoConfig

from solution.server.config import DEFAULT_MODEL_CONFIG
from solution.server.models import load_model_specs, resolve_labels
from solution.server.standins.build import IVANLAU_LABELS

KEYS = ["cardiffnlp", "ivanlau", "svalabs", "EIStakovskii", "jy46604790"]


def test_default_config_lists_the_five_models_in_response_order():
    specs = load_model_specs(DEFAULT_MODEL_CONFIG)
    assert [s.key for s in specs] == KEYS
    assert specs[0].source == "cardiffnlp/twitter-xlm-roberta-base-sentiment"


def test_models_dir_replaces_sources_of_the_keys_it_holds(tmp_path):
    (tmp_path / "svalabs").mkdir()
    specs = {s.key: s.source for s in load_model_specs(DEFAULT_MODEL_CONFIG, str(tmp_path))}
    assert specs["svalabs"] == str(tmp_path / "svalabs")
    assert specs["ivanlau"].startswith("ivanlau/")  # not in the folder: hub id kept


@pytest.mark.parametrize(
    "content, message",
    [
        ("{}", "expected"),
        ('{"models": []}', "at least one"),
        ('{"models": [{"key": "a", "source": "x"}, {"key": "a", "source": "y"}]}', "unique"),
        ('{"models": [{"source": "x"}]}', "entry 0"),
        ('{"models": [{"key": "a", "source": "x", "labels": {"one": "A"}}]}', "entry 0"),
    ],
)
def test_bad_model_configs_say_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "models.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_model_specs(path)


def test_contract_labels_of_the_five_stand_ins(standins_tiny):
    specs = load_model_specs(DEFAULT_MODEL_CONFIG, str(standins_tiny))
    labels = {s.key: resolve_labels(AutoConfig.from_pretrained(s.source), s.labels) for s in specs}
    assert labels["cardiffnlp"] == ("NEGATIVE", "NEUTRAL", "POSITIVE")
    assert len(labels["ivanlau"]) == 45
    assert labels["ivanlau"][29] == "Mongolian"  # "Mangolian" in the published config
    assert labels["ivanlau"][43] == "Ukranian"  # what clients expect, as spelled
    assert labels["ivanlau"][11] == "English"
    assert labels["svalabs"] == ("HAM", "SPAM")
    assert labels["EIStakovskii"] == ("LABEL_0", "LABEL_1")
    assert labels["jy46604790"] == ("LABEL_0", "LABEL_1")


def test_stand_in_configs_carry_the_published_quirks(standins_tiny):
    ivanlau = json.loads((standins_tiny / "ivanlau" / "config.json").read_text())
    assert ivanlau["label2id"]["Arabic"] == "0"  # string ids
    assert ivanlau["id2label"]["29"] == "Mangolian"
    svalabs = json.loads((standins_tiny / "svalabs" / "config.json").read_text())
    assert svalabs["label2id"] is None
    for key in ("EIStakovskii", "jy46604790"):
        config = json.loads((standins_tiny / key / "config.json").read_text())
        assert "id2label" not in config
    assert len(IVANLAU_LABELS) == 45


def test_override_outside_the_label_range_is_refused(standins_tiny):
    config = AutoConfig.from_pretrained(standins_tiny / "svalabs")
    with pytest.raises(ValueError, match="index 5"):
        resolve_labels(config, {5: "X"})
