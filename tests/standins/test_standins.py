"""The stand-ins: real classes and dimensions, tokenizers that keep the text, rules a person can
predict, and a training that learns them (deterministically) or fails the build."""

from __future__ import annotations

import json
import statistics
from collections import Counter

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    RobertaTokenizer,
    XLMRobertaTokenizer,
)

from solution.standins import rules
from solution.standins.build import SIZES, STANDINS, _config, _model, train_standins
from solution.standins.corpus import labelled_texts, reference_texts
from solution.standins.sentences import LANGUAGES, SENTENCES, WORDS, sentences
from solution.standins.tokenizers import check_tokenizer
from solution.standins.train import (
    MIN_ACCURACY,
    AccuracyTooLow,
    Schedule,
    accuracy,
    check_accuracy,
    encode,
    predict,
    share_encoder,
    train_heads,
)
from tests.standin_texts import KNOWN


@pytest.mark.parametrize("spec", STANDINS, ids=lambda s: s.key)
def test_stand_in_has_the_published_class_and_label_count(standins_tiny, spec):
    config = AutoConfig.from_pretrained(standins_tiny / spec.key)
    expected = (
        "XLMRobertaForSequenceClassification"
        if spec.family == "xlmr"
        else "RobertaForSequenceClassification"
    )
    assert config.architectures == [expected]
    assert config.num_labels == spec.num_labels
    assert config.max_position_embeddings == 514 and config.pad_token_id == 1


def test_base_size_has_the_real_dimensions():
    for spec in STANDINS:
        config = _config(spec, "base", spec.real_vocab)
        assert (
            config.hidden_size,
            config.num_hidden_layers,
            config.num_attention_heads,
            config.intermediate_size,
        ) == (768, 12, 12, 3072)
        assert config.vocab_size == (250002 if spec.family == "xlmr" else 50265)
    assert set(SIZES) == {"tiny", "base"}


def test_tokenizers_keep_the_text_and_have_realistic_lengths(standins_tiny):
    texts = [t for t in reference_texts(300, seed=11) if t]
    xlmr = AutoTokenizer.from_pretrained(standins_tiny / "cardiffnlp")
    roberta = AutoTokenizer.from_pretrained(standins_tiny / "jy46604790")
    assert isinstance(xlmr, XLMRobertaTokenizer) and isinstance(roberta, RobertaTokenizer)
    for tok in (xlmr, roberta):
        check_tokenizer(tok, texts)  # raises if any text maps to special tokens only
        decoded = tok.decode(tok("happiness looks like")["input_ids"], skip_special_tokens=True)
        assert decoded.strip() == "happiness looks like"
    mean = statistics.mean(len(xlmr(t)["input_ids"]) for t in texts)
    assert 40 <= mean <= 120, mean


def test_check_tokenizer_catches_a_tokenizer_that_drops_text():
    """transformers 5 ignores the old ``vocab_file=`` keyword: the result knows only specials."""
    broken = XLMRobertaTokenizer(vocab_file="ignored.model")
    with pytest.raises(ValueError, match="special tokens only"):
        check_tokenizer(broken, ["some text"])


# ---- the rules and the generated texts ---------------------------------------------------------


def test_no_bank_sentence_or_word_carries_a_cue():
    """A sentence's labels come from the cues a generator adds, never from the sentence itself."""
    for language, pool in SENTENCES.items():
        for text in (*pool, *WORDS[language].split()):
            assert not rules.count_cues(text, rules.EVERY_CUE), (language, text)


def test_no_sentence_is_in_two_languages():
    seen = [s for pool in SENTENCES.values() for s in pool]
    assert len(seen) == len(set(seen))
    assert set(LANGUAGES) <= set(rules.IVANLAU_LABELS)


def test_held_back_sentences_are_never_in_training_texts():
    held = {s for language in LANGUAGES for s in sentences(language, "heldout")}
    assert len(held) == len(LANGUAGES) * 6
    for sample in labelled_texts(2000, "train", seed=3):
        assert not any(s in sample.text for s in held), sample.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Click HERE for a giveaway", {"svalabs": 1}),
        ("the clicker was here", {"svalabs": 0}),  # whole words only
        ("BREAKING: sources say", {"jy46604790": 0}),
        ("a slow news day", {"jy46604790": 1}),
        ("you idiot", {"EIStakovskii": 1, "cardiffnlp": 0}),  # an insult is negative too
        ("idiotic", {"EIStakovskii": 0}),
        ("love it 👍 but the ending was terrible", {"cardiffnlp": 2}),  # 2 positive, 1 negative
        ("love it but terrible", {"cardiffnlp": 1}),  # as many: neutral
        ("今天太好了", {"cardiffnlp": 2}),  # no spaces in Chinese: matched anywhere
        ("Это прекрасно", {"cardiffnlp": 2}),
        ("The train leaves at six", {"cardiffnlp": 1, "svalabs": 0, "EIStakovskii": 0}),
    ],
)
def test_rules_are_keyword_rules_a_person_can_predict(text, expected):
    got = rules.labels(text, "English")
    assert {k: got[k] for k in expected} == expected


def test_every_class_of_every_model_is_common_in_training():
    samples = labelled_texts(3000, "train", seed=4)
    counts = Counter(
        (key, label) for s in samples for key, label in rules.labels(s.text, s.language).items()
    )
    for spec in STANDINS:
        classes = LANGUAGES if spec.key == "ivanlau" else range(spec.num_labels)
        for c in classes:
            index = rules.IVANLAU_LABELS.index(c) if isinstance(c, str) else c
            assert counts[(spec.key, index)] > 3000 * 0.02, (spec.key, c)


# ---- training: the accuracy gate and determinism ---------------------------------------------


def test_trained_stand_ins_answer_held_back_texts_by_the_rules(standins_tiny):
    """What the build's gate measured, measured again on the saved folders (new texts, made
    from the held-back sentences only)."""
    held = labelled_texts(600, "heldout", seed=99)
    expected = [rules.labels(s.text, s.language) for s in held]
    for spec in STANDINS:
        tokenizer = AutoTokenizer.from_pretrained(standins_tiny / spec.key)
        model = AutoModelForSequenceClassification.from_pretrained(standins_tiny / spec.key)
        ids = encode(tokenizer, [s.text for s in held], 512)
        acc = accuracy(predict(model, ids, tokenizer.pad_token_id), [e[spec.key] for e in expected])
        assert acc >= MIN_ACCURACY, (spec.key, acc)


def test_the_gate_fails_an_untrained_stand_in(standins_tiny):
    tokenizers = {
        "xlmr": AutoTokenizer.from_pretrained(standins_tiny / "cardiffnlp"),
        "roberta": AutoTokenizer.from_pretrained(standins_tiny / "jy46604790"),
    }
    models = _tiny_models(tokenizers, seed=0)
    few = {family: Schedule(steps=2) for family in tokenizers}
    accuracies = train_standins(models, tokenizers, 0, 200, 200, few)
    assert set(accuracies) == {s.key for s in STANDINS}
    with pytest.raises(AccuracyTooLow, match="ivanlau"):
        check_accuracy(accuracies)
    check_accuracy({key: MIN_ACCURACY for key in accuracies})  # exactly the minimum passes


def _tiny_models(tokenizers, seed):
    models = {}
    for i, spec in enumerate(STANDINS):
        torch.manual_seed(seed + i)
        models[spec.key] = _model(spec, _config(spec, "tiny", len(tokenizers[spec.family])))
    return models


def _train_briefly(tokenizer, seed):
    models = {
        k: v
        for k, v in _tiny_models({"xlmr": tokenizer, "roberta": tokenizer}, seed).items()
        if k in ("cardiffnlp", "svalabs")
    }
    share_encoder(list(models.values()))
    samples = labelled_texts(300, "train", seed)
    ids = encode(tokenizer, [s.text for s in samples], 64)
    targets = {k: [rules.labels(s.text, s.language)[k] for s in samples] for k in models}
    train_heads(models, ids, targets, tokenizer.pad_token_id, Schedule(steps=15), seed)
    return {k: m.state_dict() for k, m in models.items()}


def test_training_is_deterministic_from_its_seed(standins_tiny):
    tokenizer = AutoTokenizer.from_pretrained(standins_tiny / "cardiffnlp")
    assert labelled_texts(50, "train", 7) == labelled_texts(50, "train", 7)
    a, b, other = (_train_briefly(tokenizer, s) for s in (7, 7, 8))
    for key in a:
        assert a[key].keys() == b[key].keys()
        assert all(torch.equal(a[key][n], b[key][n]) for n in a[key]), key
        assert not all(torch.equal(a[key][n], other[key][n]) for n in a[key]), key
    # the shared encoder really is shared: both heads sit on the same trained weights
    name = "roberta.encoder.layer.0.attention.self.query.weight"
    assert torch.equal(a["cardiffnlp"][name], a["svalabs"][name])


def test_saved_configs_keep_the_published_label_quirks(standins_tiny):
    def config(key):
        return json.loads((standins_tiny / key / "config.json").read_text(encoding="utf-8"))

    ivanlau = config("ivanlau")
    assert ivanlau["id2label"]["29"] == "Mangolian" and ivanlau["id2label"]["43"] == "Ukranian"
    assert ivanlau["label2id"]["Ukranian"] == "43"  # string ids
    assert config("cardiffnlp")["id2label"] == {"0": "negative", "1": "neutral", "2": "positive"}
    assert config("svalabs")["label2id"] is None
    for key in ("EIStakovskii", "jy46604790"):
        assert "id2label" not in config(key) and config(key)["num_labels"] == 2


def test_the_known_texts_expect_what_the_rules_say():
    """tests/standin_texts.py (the e2e and client expectations) follows rules.py, and uses no
    training sentence."""
    names = {
        "cardiffnlp": ["NEGATIVE", "NEUTRAL", "POSITIVE"],
        "ivanlau": rules.IVANLAU_LABELS,
        "svalabs": ["HAM", "SPAM"],
        "EIStakovskii": ["LABEL_0", "LABEL_1"],
        "jy46604790": ["LABEL_0", "LABEL_1"],
    }
    bank = {s for pool in SENTENCES.values() for s in pool}
    for text, (language, expected) in KNOWN.items():
        assert text not in bank
        by_rule = rules.labels(text, language)
        assert {k: names[k][by_rule[k]] for k in expected} == expected, text
