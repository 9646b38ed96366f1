"""Tokens per text: every benchmark run reports them, since cost grows with tokens, not texts.

Counted with the served models' own tokenizer files (``<models_dir>/<key>/tokenizer.json``),
truncated at 512 as the service does; a text's cost is its longest count over the models (what
the engine budgets). The tiny and base stand-ins share their tokenizers, so either folder gives
the same counts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .stats import distribution

CANDIDATES = (".cache/standins-base", ".cache/standins-tiny")


def find_models_dir(explicit: str | None = None) -> Path | None:
    """The first folder holding per-model tokenizers: the argument, CLS_MODELS_DIR, the cache."""
    for candidate in (explicit, os.environ.get("CLS_MODELS_DIR"), *CANDIDATES):
        if candidate and any(Path(candidate).glob("*/tokenizer.json")):
            return Path(candidate)
    return None


def token_stats(
    texts: Sequence[str], models_dir: str | Path | None, max_tokens: int = 512
) -> dict[str, Any] | None:
    """{"per_text": mean/p50/p95/max of the longest count, "per_model": {key: ...}}, or None
    when no tokenizer files are at hand (a client run against a remote service)."""
    folder = find_models_dir(str(models_dir) if models_dir else None)
    if folder is None:
        return None
    from tokenizers import Tokenizer

    per_model: dict[str, list[int]] = {}
    for path in sorted(folder.glob("*/tokenizer.json")):
        tokenizer = Tokenizer.from_file(str(path))
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=max_tokens)
        encodings = tokenizer.encode_batch(list(texts), add_special_tokens=True)
        per_model[path.parent.name] = [len(e.ids) for e in encodings]
    longest = [max(counts) for counts in zip(*per_model.values(), strict=True)]
    return {
        "source": str(folder),
        "texts": len(texts),
        "per_text": distribution(longest),
        "per_model": {key: distribution(counts) for key, counts in per_model.items()},
    }


def format_tokens(stats: dict[str, Any] | None) -> str:
    if stats is None:
        return "tokens per text: not counted (no tokenizer files here; pass --models-dir)"
    d = stats["per_text"]
    return (
        f"tokens per text (longest over the models, {stats['texts']} texts): "
        f"mean {d['mean']:.1f}, p95 {d['p95']:.0f}, max {d['max']:.0f}"
    )
