"""Train the two stand-in tokenizer families on the generated corpus.

- XLM-R family: a sentencepiece unigram model (saved as ``sentencepiece.bpe.model``, as the real
  models ship it), wrapped the way transformers converts XLM-R's: fairseq's four leading special
  tokens, the pieces shifted by one, ``<mask>`` last, sentencepiece's precompiled normalizer.
- RoBERTa family: a byte-level BPE (``vocab.json`` + ``merges.txt``).

transformers 5 builds tokenizers from ``vocab=``/``merges=`` (no more ``vocab_file=``); passing the
old keywords silently yields a tokenizer that knows only the special tokens, which
``check_tokenizer`` catches.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from pathlib import Path

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as sp_pb2
from tokenizers import ByteLevelBPETokenizer
from transformers import PreTrainedTokenizerBase, RobertaTokenizer, XLMRobertaTokenizer

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]  # ids 0..3, as in fairseq/XLM-R and RoBERTa


def train_xlmr(lines: Iterable[str], vocab_size: int, out: Path) -> XLMRobertaTokenizer:
    """A sentencepiece unigram model plus the XLM-R wrapping; saved into ``out``."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(lines)),
        model_writer=model,
        model_type="unigram",
        vocab_size=vocab_size,
        character_coverage=1.0,  # keep every CJK character seen: no silent <unk> for them
        normalization_rule_name="nmt_nfkc",  # XLM-R's normalizer
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    proto = sp_pb2.ModelProto()  # type: ignore[attr-defined]  # generated protobuf class
    proto.ParseFromString(model.getvalue())
    # fairseq layout: <s> <pad> </s> <unk>, then sentencepiece pieces from index 3 on, <mask> last
    vocab = [(tok, 0.0) for tok in SPECIALS]
    vocab += [(p.piece, p.score) for p in proto.pieces[3:]]
    vocab.append(("<mask>", 0.0))
    tokenizer = XLMRobertaTokenizer(
        vocab=vocab,
        _spm_precompiled_charsmap=proto.normalizer_spec.precompiled_charsmap,
        model_max_length=512,
    )
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out)
    (out / "sentencepiece.bpe.model").write_bytes(model.getvalue())
    return tokenizer


def train_roberta(lines: Iterable[str], vocab_size: int, out: Path) -> RobertaTokenizer:
    """A byte-level BPE with RoBERTa's special tokens; saved into ``out``."""
    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train_from_iterator(
        list(lines),
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[*SPECIALS, "<mask>"],
    )
    out.mkdir(parents=True, exist_ok=True)
    bpe.save_model(str(out))
    vocab = json.loads((out / "vocab.json").read_text(encoding="utf-8"))
    merges = [
        tuple(line.split(" "))
        for line in (out / "merges.txt").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#version")
    ]
    # merges as (left, right) pairs: what tokenizers' BPE takes, whatever the hint says
    tokenizer = RobertaTokenizer(vocab=vocab, merges=merges, model_max_length=512)  # type: ignore[arg-type]
    tokenizer.save_pretrained(out)
    return tokenizer


def check_tokenizer(tokenizer: PreTrainedTokenizerBase, probe: Iterable[str]) -> None:
    """Refuse a tokenizer that drops text: every non-empty probe must yield ordinary tokens, and
    unknown tokens must stay rare (the symptom of constructor keywords that were ignored)."""
    special = set(tokenizer.all_special_ids)
    unk = tokenizer.unk_token_id
    total = unknown = 0
    for text in probe:
        ids = tokenizer(text)["input_ids"]
        ordinary = [i for i in ids if i not in special]
        if text.strip() and not ordinary:
            raise ValueError(f"tokenizer maps {text[:40]!r} to special tokens only")
        total += len(ids)
        unknown += sum(1 for i in ids if i == unk)
    if total and unknown / total > 0.02:
        raise ValueError(f"tokenizer yields {unknown / total:.1%} unknown tokens on the probe")
