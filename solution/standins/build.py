"""Write the five stand-in model folders (``tiny`` for tests, ``base`` for benchmarks)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    RobertaConfig,
    RobertaForSequenceClassification,
    XLMRobertaConfig,
    XLMRobertaForSequenceClassification,
)

from solution.standins import rules
from solution.standins.corpus import labelled_texts, reference_texts, training_corpus
from solution.standins.rules import IVANLAU_LABELS
from solution.standins.tokenizers import check_tokenizer, train_roberta, train_xlmr
from solution.standins.train import (
    Schedule,
    accuracy,
    check_accuracy,
    encode,
    encode_sampled,
    predict,
    share_encoder,
    train_heads,
)

log = logging.getLogger(__name__)


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

SIZES: dict[str, dict[str, Any]] = {
    # tiny: trained in about a minute on 2 cores, for tests and the demo. Weights start wider
    # than BERT's 0.02 (0.1: the attention learns to pick out cue words within the budget) and
    # without dropout (a short training on generated text needs no regularising of that kind).
    "tiny": dict(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        initializer_range=0.1,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    ),
    # base: the real models' dimensions (shared/models.md), for benchmarks; random weights
    "base": dict(
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072
    ),
}
TOKENIZER_VOCAB = 8000  # large enough that whole words of the corpus become single pieces
CORPUS_LINES = 20000
TRAIN_TEXTS = 30000
HELDOUT_TEXTS = 2000
SCHEDULES = {"xlmr": Schedule(steps=1500, lr=3e-3), "roberta": Schedule(steps=600, lr=3e-3)}


def build(size: str, out: Path, seed: int = 0) -> dict[str, float]:
    """Build the tokenizers, then the five model folders (trained at ``tiny`` size). Returns each
    stand-in's accuracy on held-back texts (empty for ``base``); raises ``AccuracyTooLow``, having
    written nothing, when a trained stand-in is below ``MIN_ACCURACY``."""
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
    models = {}
    for i, spec in enumerate(STANDINS):
        vocab = spec.real_vocab if size == "base" else len(tokenizers[spec.family])
        torch.manual_seed(seed + i)
        models[spec.key] = _model(spec, _config(spec, size, vocab))
    spm_model = out / ".tokenizer-xlmr" / "sentencepiece.bpe.model"
    accuracies = (
        train_standins(models, tokenizers, seed, sentencepiece_model=spm_model)
        if size == "tiny"
        else {}
    )
    for key, acc in accuracies.items():
        log.info("held-back accuracy %-13s %.1f%%", key, 100 * acc)
    check_accuracy(accuracies)
    for spec in STANDINS:
        _save(models[spec.key], tokenizers[spec.family], spec, out)
        log.info("stand-in %s (%s, %s) written to %s", spec.key, spec.family, size, out / spec.key)
    return accuracies


def train_standins(
    models: dict[str, PreTrainedModel],
    tokenizers: Mapping[str, PreTrainedTokenizerBase],
    seed: int,
    train_texts: int = TRAIN_TEXTS,
    heldout_texts: int = HELDOUT_TEXTS,
    schedules: dict[str, Schedule] = SCHEDULES,
    sentencepiece_model: Path | None = None,
) -> dict[str, float]:
    """Train each family's models on ``rules.labels`` of generated texts (one encoder per family,
    see ``train.py``); returns each model's accuracy on texts made from held-back sentences.

    The two families train at once, one thread each with one torch thread apiece: their small
    matrix products gain little from a second core, and torch releases the GIL while it computes,
    so two trainings side by side use both cores (and a third process competing for them costs
    less than it does to two threads of one training waiting on each other)."""
    train = labelled_texts(train_texts, "train", seed)
    heldout = labelled_texts(heldout_texts, "heldout", seed + 1)
    train_labels = [rules.labels(s.text, s.language) for s in train]
    heldout_labels = [rules.labels(s.text, s.language) for s in heldout]

    def one_family(family: str) -> dict[str, float]:
        torch.set_num_threads(1)  # per thread: a worker does not inherit the caller's setting
        tokenizer = tokenizers[family]
        members = {s.key: models[s.key] for s in STANDINS if s.family == family}
        share_encoder(list(members.values()))
        schedule = schedules[family]
        texts = [s.text for s in train]
        if family == "xlmr" and sentencepiece_model is not None:
            ids = encode_sampled(tokenizer, sentencepiece_model, texts, schedule.max_tokens, seed)
        else:
            ids = encode(tokenizer, texts, schedule.max_tokens)
        targets = {key: [t[key] for t in train_labels] for key in members}
        log.info("training %s (%s) for %d steps", family, ", ".join(members), schedule.steps)
        pad = int(tokenizer.pad_token_id)  # type: ignore[arg-type]
        train_heads(members, ids, targets, pad, schedule, seed)
        held_ids = encode(tokenizer, [s.text for s in heldout], 512)
        return {
            key: accuracy(predict(model, held_ids, pad), [t[key] for t in heldout_labels])
            for key, model in members.items()
        }

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(len(tokenizers)) as pool:
            results = list(pool.map(one_family, tokenizers))
    finally:
        torch.set_num_threads(threads)
    return {key: acc for result in results for key, acc in result.items()}


def _save(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, spec: StandIn, out: Path
) -> None:
    folder = out / spec.key
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    if spec.family == "xlmr":  # the real XLM-R models ship the sentencepiece model too
        src = out / ".tokenizer-xlmr" / "sentencepiece.bpe.model"
        (folder / "sentencepiece.bpe.model").write_bytes(src.read_bytes())
    _write_label_quirks(folder / "config.json", spec)


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
