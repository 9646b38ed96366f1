"""Stand-ins of each kind of sequence classifier a team may bring, made from the tiny stand-ins
in a second: single-label (softmax), multi-label (``problem_type: multi_label_classification``,
sigmoid) and regression (one output, its value). Shared by the server and start-up tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification

TOPICS = ("sport", "music", "politics")


def build_kinds(standins: Path, out: Path) -> Path:
    """``out`` holds sentiment/, topics/, score/ and a models.json serving the three (topics with
    a 0.5 threshold); returns the models.json path (serve with CLS_MODELS_DIR=out)."""
    shutil.copytree(standins / "cardiffnlp", out / "sentiment")
    shutil.copytree(standins / "svalabs", out / "topics")
    config_path = out / "topics" / "config.json"
    config = json.loads(config_path.read_text())
    config["problem_type"] = "multi_label_classification"
    config_path.write_text(json.dumps(config))
    # three labels from a two-label model: a new, seeded head (the encoder stays trained)
    _new_head(out / "topics", num_labels=len(TOPICS), id2label=dict(enumerate(TOPICS)))
    shutil.copytree(standins / "jy46604790", out / "score")
    _new_head(out / "score", num_labels=1, id2label={0: "LABEL_0"}, problem_type="regression")
    models_json = out / "models.json"
    models_json.write_text(
        json.dumps(
            {
                "models": [
                    {"key": "sentiment", "source": "unused"},
                    {"key": "topics", "source": "unused", "threshold": 0.5},
                    {"key": "score", "source": "unused"},
                ]
            }
        )
    )
    return models_json


def _new_head(folder: Path, *, num_labels: int, id2label: dict, problem_type: str = "") -> None:
    torch.manual_seed(0)
    extra = {"problem_type": problem_type} if problem_type else {}
    model = AutoModelForSequenceClassification.from_pretrained(
        folder,
        num_labels=num_labels,
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
        ignore_mismatched_sizes=True,
        **extra,
    )
    model.save_pretrained(folder)
