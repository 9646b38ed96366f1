"""Tokenizer families: grouped by what decides the ids, verified on a probe corpus."""

from __future__ import annotations

import json
import shutil

from transformers import AutoTokenizer

from solution.server.families import group_families, id_signature

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
    texts = ["", "Hello 👍 https://t.co/x", "\u0000\u001f ctl", "long " * 600]
    for family in families:
        tok = tokenizers[family.members[0]]
        expected = [tok(t, truncation=True, max_length=512)["input_ids"] for t in texts]
        assert family.encode(texts) == expected
