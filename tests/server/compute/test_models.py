"""The model config and label resolution: the API contract of the five default models."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants as hub_constants
from transformers import AutoConfig

from solution.server.compute import models
from solution.server.compute.models import (
    LoadedModel,
    ModelLoadError,
    ModelSpec,
    load_model_specs,
    load_models,
    resolve_labels,
)
from solution.server.config import DEFAULT_MODEL_CONFIG
from solution.standins.build import IVANLAU_LABELS
from tests.live_server import free_port

KEYS = ["cardiffnlp", "ivanlau", "svalabs", "EIStakovskii", "jy46604790"]


def test_default_config_lists_the_five_models_in_response_order():
    specs = load_model_specs(DEFAULT_MODEL_CONFIG)
    assert [s.key for s in specs] == KEYS
    assert specs[0].source == "cardiffnlp/twitter-xlm-roberta-base-sentiment"


def test_models_dir_replaces_every_source(tmp_path):
    for key in KEYS:
        (tmp_path / key).mkdir()
    specs = {s.key: s.source for s in load_model_specs(DEFAULT_MODEL_CONFIG, str(tmp_path))}
    assert specs == {key: str(tmp_path / key) for key in KEYS}


def test_a_models_dir_that_is_not_a_folder_is_refused(tmp_path):
    with pytest.raises(ModelLoadError, match=r"CLS_MODELS_DIR=.* is not a folder"):
        load_model_specs(DEFAULT_MODEL_CONFIG, str(tmp_path / "absent"))


def test_a_key_missing_from_models_dir_is_refused_not_fetched_from_the_hub(tmp_path):
    (tmp_path / "svalabs").mkdir()  # the other four are missing
    with pytest.raises(ModelLoadError, match="no folder for 'cardiffnlp', 'ivanlau'") as info:
        load_model_specs(DEFAULT_MODEL_CONFIG, str(tmp_path))
    assert str(tmp_path / "cardiffnlp") in str(info.value)
    assert "make demo" in str(info.value)


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


# ---- load failures: one clear line naming the model and what to fix ----------------------------


@pytest.fixture
def damaged(standins_tiny, tmp_path) -> Path:
    """A private copy of the stand-ins, to break."""
    out = tmp_path / "standins"
    shutil.copytree(standins_tiny, out)
    return out


def load(models_dir: Path) -> list[LoadedModel]:
    specs = load_model_specs(DEFAULT_MODEL_CONFIG, str(models_dir))
    return load_models(specs, torch.device("cpu"), torch.float32, 512)


def test_a_truncated_weights_file_names_the_model_and_the_folder(damaged):
    weights = damaged / "svalabs" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelLoadError, match="'svalabs'") as info:
        load(damaged)
    message = str(info.value)
    assert str(damaged / "svalabs") in message and "\n" not in message
    assert "make demo" in message  # how to rebuild it


@pytest.mark.parametrize("name", ["tokenizer.json", "config.json", "model.safetensors"])
def test_a_missing_file_in_a_model_folder_is_named(damaged, name):
    (damaged / "ivanlau" / name).unlink()
    with pytest.raises(ModelLoadError, match=f"'ivanlau'.*{name}") as info:
        load(damaged)
    assert "\n" not in str(info.value)


def test_an_unreachable_hub_is_probed_once_then_only_the_local_cache_is_read(monkeypatch):
    probes = []
    monkeypatch.setattr(models, "hub_reachable", lambda: probes.append(1) or False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    specs = [ModelSpec("a", "no-such-org/model-a"), ModelSpec("b", "no-such-org/model-b")]
    with pytest.raises(ModelLoadError, match=r"'a'.*no-such-org/model-a") as info:
        load_models(specs, torch.device("cpu"), torch.float32, 512)
    assert probes == [1]
    message = str(info.value)
    assert "unreachable" in message and "make demo" in message and "\n" not in message


def test_offline_mode_skips_the_probe(monkeypatch):
    monkeypatch.setattr(models, "hub_reachable", lambda: pytest.fail("probed while offline"))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelLoadError, match=r"HF_HUB_OFFLINE.*make demo"):
        load_models([ModelSpec("a", "no-such-org/a")], torch.device("cpu"), torch.float32, 512)


def test_local_folders_need_no_hub(standins_tiny, monkeypatch):
    monkeypatch.setattr(models, "hub_reachable", lambda: pytest.fail("probed for local folders"))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    assert [m.key for m in load(standins_tiny)] == KEYS


class Hub(BaseHTTPRequestHandler):
    status = 200

    def do_HEAD(self) -> None:
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("status, reachable", [(200, True), (404, True), (503, False)])
def test_hub_reachable_asks_the_configured_endpoint(monkeypatch, status, reachable):
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (Hub,), {"status": status}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(hub_constants, "ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        assert models.hub_reachable() is reachable
    finally:
        server.shutdown()
        server.server_close()


def test_hub_reachable_is_false_when_nothing_listens(monkeypatch):
    monkeypatch.setattr(hub_constants, "ENDPOINT", f"http://127.0.0.1:{free_port()}")
    assert models.hub_reachable() is False
