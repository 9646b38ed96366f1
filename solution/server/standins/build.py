"""Write the five stand-in model folders (``tiny`` for tests, ``base`` for benchmarks)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    PretrainedConfig,
    PreTrainedModel,
    RobertaConfig,
    RobertaForSequenceClassification,
    XLMRobertaConfig,
    XLMRobertaForSequenceClassification,
)

from .corpus import reference_texts, training_corpus
from .tokenizers import check_tokenizer, train_roberta, train_xlmr

log = logging.getLogger(__name__)

IVANLAU_LABELS = [
    "Arabic",
    "Basque",
    "Breton",
    "Catalan",
    "Chinese_China",
    "Chinese_Hongkong",
    "Chinese_Taiwan",
    "Chuvash",
    "Czech",
    "Dhivehi",
    "Dutch",
    "English",
    "Esperanto",
    "Estonian",
    "French",
    "Frisian",
    "Georgian",
    "German",
    "Greek",
    "Hakha_Chin",
    "Indonesian",
    "Interlingua",
    "Italian",
    "Japanese",
    "Kabyle",
    "Kinyarwanda",
    "Kyrgyz",
    "Latvian",
    "Maltese",
    "Mangolian",
    "Persian",
    "Polish",
    "Portuguese",
    "Romanian",
    "Romansh_Sursilvan",
    "Russian",
    "Sakha",
    "Slovenian",
    "Spanish",
    "Swedish",
    "Tamil",
    "Tatar",
    "Turkish",
    "Ukranian",
    "Welsh",
]


@dataclass(frozen=True)
class StandIn:
    """One served model as published: class family, label set and config.json quirks."""

    key: str
    family: str  # "xlmr" or "roberta"
    num_labels: int
    # what the published config.json holds for the labels (None = key absent)
    id2label: dict[str, str] | None
    label2id: Any  # dict, None (null in JSON) or "absent"
    real_vocab: int


STANDINS = [
    StandIn(
        "cardiffnlp",
        "xlmr",
        3,
        {"0": "negative", "1": "neutral", "2": "positive"},
        {"negative": 0, "neutral": 1, "positive": 2},
        250002,
    ),
    StandIn(
        "ivanlau",
        "xlmr",
        45,
        {str(i): n for i, n in enumerate(IVANLAU_LABELS)},
        {n: str(i) for i, n in enumerate(IVANLAU_LABELS)},
        250002,
    ),  # string ids, as published
    StandIn("svalabs", "xlmr", 2, {"0": "HAM", "1": "SPAM"}, None, 250002),
    StandIn("EIStakovskii", "xlmr", 2, None, "absent", 250002),
    StandIn("jy46604790", "roberta", 2, None, "absent", 50265),
]

SIZES: dict[str, dict[str, int]] = {
    # tiny: builds and runs in seconds, for tests
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64),
    # base: the real models' dimensions (shared/models.md), for benchmarks
    "base": dict(
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072
    ),
}
TOKENIZER_VOCAB = 8000  # large enough that whole words of the corpus become single pieces
CORPUS_LINES = 20000


def build(size: str, out: Path, seed: int = 0) -> list[Path]:
    """Build the tokenizers once, then each model folder; returns the folders in served order."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}")
    out.mkdir(parents=True, exist_ok=True)
    lines = list(training_corpus(CORPUS_LINES))
    probe = reference_texts(200, seed=7)
    tokenizers = {
        "xlmr": train_xlmr(lines, TOKENIZER_VOCAB, out / ".tokenizer-xlmr"),
        "roberta": train_roberta(lines, TOKENIZER_VOCAB, out / ".tokenizer-roberta"),
    }
    for tok in tokenizers.values():
        check_tokenizer(tok, probe)
    folders = []
    for i, spec in enumerate(STANDINS):
        folder = out / spec.key
        tokenizer = tokenizers[spec.family]
        vocab = spec.real_vocab if size == "base" else len(tokenizer)
        torch.manual_seed(seed + i)
        model = _model(spec, _config(spec, size, vocab))
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        if spec.family == "xlmr":  # the real XLM-R models ship the sentencepiece model too
            src = out / ".tokenizer-xlmr" / "sentencepiece.bpe.model"
            (folder / "sentencepiece.bpe.model").write_bytes(src.read_bytes())
        _write_label_quirks(folder / "config.json", spec)
        folders.append(folder)
        log.info("stand-in %s (%s, %s) written to %s", spec.key, spec.family, size, folder)
    return folders


def _config(spec: StandIn, size: str, vocab: int) -> PretrainedConfig:
    common: dict[str, Any] = dict(
        vocab_size=vocab,
        max_position_embeddings=514,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        hidden_act="gelu",
        num_labels=spec.num_labels,
        **SIZES[size],
    )
    cls = XLMRobertaConfig if spec.family == "xlmr" else RobertaConfig
    return cls(**common)


def _model(spec: StandIn, config: PretrainedConfig) -> PreTrainedModel:
    cls = (
        XLMRobertaForSequenceClassification
        if spec.family == "xlmr"
        else RobertaForSequenceClassification
    )
    model = cls(config)
    model.eval()
    return model


def _write_label_quirks(path: Path, spec: StandIn) -> None:
    """Make config.json's label fields exactly as the published model has them."""
    config = json.loads(path.read_text(encoding="utf-8"))
    config.pop("id2label", None)
    config.pop("label2id", None)
    if spec.id2label is not None:
        config["id2label"] = spec.id2label
    else:  # without id2label, num_labels must still say how many classes there are
        config["num_labels"] = spec.num_labels
    if spec.label2id != "absent":
        config["label2id"] = spec.label2id
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
