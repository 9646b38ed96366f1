"""Tokenizer families: models whose tokenizers produce the same ids share one tokenization;
and ``tokenize``, the rules of tokenizing a batch's texts for the families they need.

Two tokenizers are grouped when everything that decides the ids is equal (the vocabulary/model,
normalizer, pre-tokenizer, post-processor and added tokens of their ``tokenizer.json``), not when
files hash equal: the four XLM-R models ship byte-different files whose differences (metadata such
as ``model_max_length``, the decoder, truncation/padding state) do not change a single id. The
grouping is then verified on a probe corpus, and a member whose ids disagree is split off.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerBase

from solution.server.errors import InvalidInput, ModelFailure, ServiceError

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


# Characters of a long text tokenized at first, per token kept: ordinary text averages 2 to 5
# characters per token, so 8 per token almost always settles in one try; a text that needs more
# (long words, runs of characters the normalizer removes) doubles the prefix until it settles.
PREFIX_CHARS_PER_TOKEN = 8
# Pre-tokens (words) between the last kept token and the cut that must be complete. The cut word
# itself may tokenize differently; byte-level BPE's whitespace rule (``\s+(?!\S)``) looks one
# character ahead, so the word before it may split differently too. Nothing further back can change:
# both tokenizer models work one pre-token at a time.
SETTLED_WORDS = 2


@dataclass
class Family:
    """One tokenization per batch for ``members`` (indices into the served models)."""

    name: str
    members: list[int]
    encoder: Tokenizer  # a private copy: truncation set once, no padding; batch encoding only
    pad_id: int
    max_tokens: int
    prefix_chars: int = 0  # first prefix tried for a long text; 0 = PREFIX_CHARS_PER_TOKEN x max

    def __post_init__(self) -> None:
        self.prefix_chars = self.prefix_chars or PREFIX_CHARS_PER_TOKEN * self.max_tokens
        self._counter: Tokenizer | None = None  # built on first use: few requests need it
        self._counter_lock = threading.Lock()

    def count(self, text: str) -> int:
        """Tokens of the whole text, special tokens included (for ``truncate: false``, whose
        clients want to be told the length; this tokenizes all of it)."""
        with self._counter_lock:
            if self._counter is None:
                self._counter = Tokenizer.from_str(self.encoder.to_str())
                self._counter.no_truncation()
        return len(self._counter.encode_batch_fast([text], add_special_tokens=True)[0].ids)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Ids per text, truncated to ``max_tokens``: exactly what tokenizing the whole text and
        truncating gives, with a long text's work bounded by the prefix its kept tokens need.

        ``encode_batch_fast`` releases the GIL (``encode`` does not), so the event loop keeps
        running while a tokenizer thread works; it gives ``encode_batch``'s ids without computing
        character offsets, which nothing here reads (a lone load text: ~110 us instead of ~170 on
        the development machine). A long text's prefixes need word ids: ``encode_batch``."""
        ids: list[list[int]] = [[] for _ in texts]
        short = [i for i, t in enumerate(texts) if len(t) <= self.prefix_chars]
        if short:
            encoded = self.encoder.encode_batch_fast(
                [texts[i] for i in short], add_special_tokens=True
            )
            for i, e in zip(short, encoded, strict=True):
                ids[i] = e.ids
        for i, text in enumerate(texts):
            if len(text) > self.prefix_chars:
                ids[i] = self._encode_long(text)
        return ids

    def _encode_long(self, text: str) -> list[int]:
        """Tokenize growing prefixes until the kept tokens end ``SETTLED_WORDS`` pre-tokens before
        the cut; then the rest of the text cannot change them. A text without such a boundary (one
        megabyte-long word) is tokenized whole."""
        size = 2 * self.prefix_chars
        while size < len(text):
            encoding = self.encoder.encode_batch([text[:size]], add_special_tokens=True)[0]
            if encoding.overflowing:
                kept = _last_word(encoding.word_ids)
                cut = _last_word(encoding.overflowing[-1].word_ids)
                if kept is not None and cut is not None and cut - kept >= SETTLED_WORDS:
                    return encoding.ids
            size *= 2
        return self.encoder.encode_batch_fast([text], add_special_tokens=True)[0].ids


Ids = list[list[int]]  # one text's token ids per family ([] for a family it does not need)


class Text(Protocol):
    """A text to tokenize, with what its request asks (``engine.scheduler.Entry`` is one)."""

    @property
    def text(self) -> str: ...

    @property
    def wanted(self) -> frozenset[int] | None: ...  # model indices it needs; None: all

    @property
    def truncate(self) -> bool: ...  # False: too long is an error, not cut

    @property
    def name(self) -> str: ...  # how an error names it: "the text", "text 3"


def tokenize(
    families: Sequence[Family], keys: Sequence[str], texts: Sequence[Text]
) -> list[Ids | ServiceError]:
    """Ids per text per family, one tokenizer call per family for all ``texts``; none for a
    family whose models a text does not want. A text the tokenizer fails on gets
    ``ModelFailure`` (the others are retried alone, so only it fails); one that does not
    ``truncate`` and is longer than a family's limit gets ``InvalidInput`` naming its count."""
    try:
        out: list[Ids | ServiceError] = [[[] for _ in families] for _ in texts]
        for f, family in enumerate(families):
            needing = [i for i, t in enumerate(texts) if _needs(t.wanted, family)]
            if not needing:
                continue
            encoded = family.encode([texts[i].text for i in needing])
            for i, ids in zip(needing, encoded, strict=True):
                result = out[i]
                if isinstance(result, ServiceError):
                    continue
                result[f] = ids
                if not texts[i].truncate and len(ids) >= family.max_tokens:
                    count = family.count(texts[i].text)
                    if count > family.max_tokens:
                        out[i] = _too_long(texts[i].name, family, count, keys)
        return out
    except Exception as exc:
        if len(texts) > 1:
            return [r for t in texts for r in tokenize(families, keys, [t])]
        log.error("tokenizer failure on one text", extra={"error": repr(exc)})
        return [ModelFailure(f"the tokenizer failed on this text: {exc}")]


def _needs(wanted: frozenset[int] | None, family: Family) -> bool:
    return wanted is None or any(m in wanted for m in family.members)


def _too_long(name: str, family: Family, count: int, keys: Sequence[str]) -> InvalidInput:
    models = ", ".join(keys[m] for m in family.members)
    return InvalidInput(
        f"{name} has {count} tokens; {models} accept at most {family.max_tokens} "
        "(set truncate to true to cut it)"
    )


def _last_word(word_ids: Sequence[int | None]) -> int | None:
    return next((w for w in reversed(word_ids) if w is not None), None)


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
