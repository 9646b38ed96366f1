"""The stand-ins: real classes and dimensions, tokenizers that keep the text."""

from __future__ import annotations

import statistics

import pytest
from transformers import AutoConfig, AutoTokenizer, RobertaTokenizer, XLMRobertaTokenizer

from solution.server.standins.build import SIZES, STANDINS, _config
from solution.server.standins.corpus import reference_texts
from solution.server.standins.tokenizers import check_tokenizer


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
