"""Tokenizer families: grouped by what decides the ids, verified on a probe corpus."""

from __future__ import annotations

import json
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from solution.server.compute.families import PROBE, group_families, id_signature, tokenize
from solution.server.errors import InvalidInput, ModelFailure

KEYS = ["cardiffnlp", "ivanlau", "svalabs", "EIStakovskii", "jy46604790"]


def load(standins, keys=KEYS):
    return [AutoTokenizer.from_pretrained(standins / k) for k in keys]


def test_four_xlmr_models_share_a_family_and_roberta_has_its_own(standins_tiny):
    families = group_families(load(standins_tiny), KEYS, [512] * 5)
    assert [f.members for f in families] == [[0, 1, 2, 3], [4]]
    assert families[0].name == "cardiffnlp+ivanlau+svalabs+EIStakovskii"


def test_metadata_differences_do_not_split_a_family(standins_tiny, tmp_path):
    """The real XLM-R models' tokenizer files differ byte-wise in metadata only."""
    copy = tmp_path / "svalabs"
    shutil.copytree(standins_tiny / "svalabs", copy)
    state = json.loads((copy / "tokenizer.json").read_text())
    state["truncation"] = {
        "direction": "Right",
        "max_length": 128,
        "strategy": "LongestFirst",
        "stride": 0,
    }
    (copy / "tokenizer.json").write_text(json.dumps(state))
    cfg = json.loads((copy / "tokenizer_config.json").read_text())
    cfg["model_max_length"] = 1000000000000000019884624838656
    (copy / "tokenizer_config.json").write_text(json.dumps(cfg))
    assert (copy / "tokenizer.json").read_bytes() != (
        standins_tiny / "svalabs" / "tokenizer.json"
    ).read_bytes()

    tokenizers = [
        AutoTokenizer.from_pretrained(standins_tiny / "cardiffnlp"),
        AutoTokenizer.from_pretrained(copy),
    ]
    assert id_signature(tokenizers[0]) == id_signature(tokenizers[1])
    assert [f.members for f in group_families(tokenizers, ["a", "b"], [512, 512])] == [[0, 1]]


def test_a_different_vocabulary_is_never_grouped(standins_tiny, tmp_path):
    copy = tmp_path / "changed"
    shutil.copytree(standins_tiny / "svalabs", copy)
    state = json.loads((copy / "tokenizer.json").read_text())
    vocab = state["model"]["vocab"]
    vocab[10], vocab[11] = vocab[11], vocab[10]  # two pieces swap ids
    (copy / "tokenizer.json").write_text(json.dumps(state))
    tokenizers = [
        AutoTokenizer.from_pretrained(standins_tiny / "cardiffnlp"),
        AutoTokenizer.from_pretrained(copy),
    ]
    assert [f.members for f in group_families(tokenizers, ["a", "b"], [512, 512])] == [[0], [1]]


def test_family_truncates_to_its_smallest_member_limit(standins_tiny):
    families = group_families(load(standins_tiny), KEYS, [512, 100, 512, 512, 512])
    assert families[0].max_tokens == 100
    assert len(families[0].encode(["word " * 1000])[0]) == 100
    assert len(families[1].encode(["word " * 1000])[0]) == 512


def test_family_encoding_equals_the_transformers_tokenizer(standins_tiny):
    tokenizers = load(standins_tiny)
    families = group_families(tokenizers, KEYS, [512] * 5)
    texts = ["", "Hello 👍 https://t.co/x", "\u0000\u001f ctl", "long " * 600, *PROBE, *FRAGMENTS]
    for family in families:
        tok = tokenizers[family.members[0]]
        expected = [tok(t, truncation=True, max_length=512)["input_ids"] for t in texts]
        assert family.encode(texts) == expected


# ---- a long text's work is bounded, its ids unchanged --------------------------------------------

# Pieces that make cuts interesting: words of every length, a URL, emoji sequences joined by ZWJ
# or with skin-tone modifiers, combining marks, CJK without spaces, whitespace runs, control
# characters (which the XLM-R normalizer removes), and one long word.
FRAGMENTS = [
    "a",
    "word",
    "magnifique",
    "https://t.co/AbC123xyz?q=1&r=2",
    "👨‍👩‍👧‍👦",
    "👍🏽",
    "🔥🔥🔥",
    "e\u0301",
    "我今天很高兴",
    "Это",
    " ",
    "   ",
    "\t\n",
    "\u0000\u0007\u001f",
    "x" * 300,
    "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
]


def whole_text_ids(family, text: str) -> list[int]:
    """The reference: tokenize everything, then truncate (the family's encoder truncates)."""
    return family.encoder.encode_batch([text], add_special_tokens=True)[0].ids


@pytest.fixture(scope="module")
def small_families(standins_tiny):
    """Families truncating at 16 tokens, so that cuts land near the kept tokens at small sizes."""
    return group_families(load(standins_tiny), KEYS, [16] * 5)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    parts=st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=60),
    joiner=st.sampled_from(["", " ", "  "]),
    prefix_chars=st.integers(min_value=1, max_value=40),
)
def test_bounded_encoding_equals_the_whole_text_truncated(
    small_families, parts, joiner, prefix_chars
):
    text = joiner.join(parts)
    for family in small_families:
        family.prefix_chars = prefix_chars  # every cut position gets tried across examples
        assert family.encode([text]) == [whole_text_ids(family, text)], family.name


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("word " * 50_000, id="250kB-of-words"),
        pytest.param("x" * (1 << 18), id="256kB-one-word"),
        pytest.param("\u0001" * (1 << 18), id="256kB-removed-by-normalizer"),
        pytest.param("👨‍👩‍👧‍👦" * 10_000, id="emoji-sequences"),
        pytest.param(
            ("Ce film était vraiment magnifique https://t.co/AbC " * 400)[:9000], id="cut-in-url"
        ),
    ],
)
def test_long_texts_at_full_size_keep_their_ids(standins_tiny, text):
    for family in group_families(load(standins_tiny), KEYS, [512] * 5):
        assert family.encode([text]) == [whole_text_ids(family, text)], family.name


def test_a_long_text_is_tokenized_from_a_prefix_only(standins_tiny, monkeypatch):
    """The bound is real: a megabyte of ordinary text costs one prefix's tokenization."""
    family = group_families(load(standins_tiny), KEYS, [512] * 5)[0]
    seen: list[int] = []
    real = family.encoder

    class Recording:
        def encode_batch(self, texts, add_special_tokens=True):
            seen.extend(len(t) for t in texts)
            return real.encode_batch(texts, add_special_tokens=add_special_tokens)

    monkeypatch.setattr(family, "encoder", Recording())
    family.encode(["hello world " * 100_000])
    assert seen == [2 * family.prefix_chars]


class Piece:
    """A text as ``tokenize`` reads it (``engine.entries.Entry`` in the service)."""

    def __init__(self, text, wanted=None, truncate=True, name="the text"):
        self.text, self.wanted, self.truncate, self.name = text, wanted, truncate, name


def test_tokenize_gives_each_text_the_ids_of_the_families_its_models_need(standins_tiny):
    families = group_families(load(standins_tiny), KEYS, [512] * 5)
    texts = [Piece("both families"), Piece("only roberta", wanted=frozenset({4}))]
    out = tokenize(families, KEYS, texts)
    assert out[0] == [
        families[0].encode(["both families"])[0],
        families[1].encode(["both families"])[0],
    ]
    assert out[1] == [[], families[1].encode(["only roberta"])[0]]


def test_tokenize_refuses_a_too_long_text_only_when_it_must_not_be_cut(standins_tiny):
    families = group_families(load(standins_tiny), KEYS, [512] * 5)
    long = "word " * 600
    out = tokenize(
        families,
        KEYS,
        [Piece(long), Piece(long, truncate=False, name="text 1"), Piece("short", truncate=False)],
    )
    assert [len(ids) for ids in out[0]] == [512, 512]  # cut, as the contract says
    assert isinstance(out[1], InvalidInput)
    count = families[0].count(long)
    assert str(out[1]) == (
        f"text 1 has {count} tokens; cardiffnlp, ivanlau, svalabs, EIStakovskii accept at most 512"
        " (set truncate to true to cut it)"
    )
    assert not isinstance(out[2], InvalidInput) and len(out[2][0]) < 512


def test_a_text_the_tokenizer_fails_on_fails_alone(standins_tiny, monkeypatch):
    families = group_families(load(standins_tiny), KEYS, [512] * 5)
    real = families[0].encode

    def encode(texts):
        if "poison" in texts:
            raise RuntimeError("simulated tokenizer failure")
        return real(texts)

    monkeypatch.setattr(families[0], "encode", encode)
    out = tokenize(families, KEYS, [Piece("fine"), Piece("poison"), Piece("also fine")])
    assert isinstance(out[1], ModelFailure) and "simulated tokenizer failure" in str(out[1])
    assert out[0][0] == real(["fine"])[0] and out[2][0] == real(["also fine"])[0]
