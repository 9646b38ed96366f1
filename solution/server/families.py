"""Tokenizer families: models whose tokenizers produce the same ids share one tokenization.

Two tokenizers are grouped when everything that decides the ids is equal (the vocabulary/model,
normalizer, pre-tokenizer, post-processor and added tokens of their ``tokenizer.json``), not when
files hash equal: the four XLM-R models ship byte-different files whose differences (metadata such
as ``model_max_length``, the decoder, truncation/padding state) do not change a single id. The
grouping is then verified on a probe corpus, and a member whose ids disagree is split off.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)

# Parts of tokenizer.json that do not influence the ids of an encoding.
_IRRELEVANT = ("truncation", "padding", "decoder", "version")

PROBE = [
    "",
    "This is how true happiness looks like 👍😜",
    "Ce film était vraiment magnifique https://t.co/AbC123 1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
    "Это был лучший концерт \u0000\u0007\t\n\u001f 我今天很高兴 هذا أجمل يوم",
    "   spaces   and\ttabs  ÅÄÖ ﬁ ① ＡＢＣ ",
    "x" * 3000,
]


def id_signature(tokenizer: PreTrainedTokenizerBase) -> str:
    """A canonical string of what decides the ids; equal strings mean the same tokenization."""
    state: dict[str, Any] = json.loads(tokenizer.backend_tokenizer.to_str())
    for key in _IRRELEVANT:
        state.pop(key, None)
    return json.dumps(state, sort_keys=True, ensure_ascii=False)


@dataclass
class Family:
    """One tokenization per batch for ``members`` (indices into the served models)."""

    name: str
    members: list[int]
    encoder: Tokenizer  # a private copy: truncation set once, no padding, one thread uses it
    pad_id: int
    max_tokens: int

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.encoder.encode_batch(list(texts), add_special_tokens=True)]


def _encoder(tokenizer: PreTrainedTokenizerBase, max_tokens: int) -> Tokenizer:
    encoder = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    encoder.no_padding()
    encoder.enable_truncation(max_length=max_tokens)
    return encoder


def _probe_ids(tokenizer: PreTrainedTokenizerBase, probe: Sequence[str]) -> list[list[int]]:
    encoder = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    encoder.no_truncation()
    encoder.no_padding()
    return [e.ids for e in encoder.encode_batch(list(probe), add_special_tokens=True)]


def group_families(
    tokenizers: Sequence[PreTrainedTokenizerBase],
    keys: Sequence[str],
    max_tokens: Sequence[int],
    probe: Sequence[str] = PROBE,
) -> list[Family]:
    """Group by id signature, then verify each group on ``probe``; disagreeing members split off."""
    groups: dict[str, list[int]] = {}
    for i, tok in enumerate(tokenizers):
        groups.setdefault(id_signature(tok), []).append(i)

    verified: list[list[int]] = []
    for members in groups.values():
        reference = _probe_ids(tokenizers[members[0]], probe)
        agree = [members[0]]
        for m in members[1:]:
            if _probe_ids(tokenizers[m], probe) == reference:
                agree.append(m)
            else:
                log.warning(
                    "tokenizer of %s matches by signature but not by ids; own family", keys[m]
                )
                verified.append([m])
        verified.append(agree)

    families = []
    for members in sorted(verified):
        first = tokenizers[members[0]]
        limit = min(max_tokens[m] for m in members)
        families.append(
            Family(
                name="+".join(keys[m] for m in members),
                members=members,
                encoder=_encoder(first, limit),
                pad_id=int(first.pad_token_id if first.pad_token_id is not None else 0),
                max_tokens=limit,
            )
        )
    return families
