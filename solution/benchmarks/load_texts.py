"""The texts the served-path benchmark sends (k6 and gRPC) and the graph limit runs: one list, so
the limit and the load are measured on the same texts.

The challenge's k6 client draws its texts with a faker extension that stock k6 lacks, and its
script is not in this repository. Issue 19 measured what those texts cost: about 120 tokens per
model with the stand-ins' tokenizers, against about 55 for ``corpus.reference_texts`` (one tweet
of one to three sentences). So a load text here is two or three such tweets joined (emoji, URLs,
control characters, bitcoin-like addresses included), about 0.5% of them empty: 122 tokens per
XLM-R model and 112 for the RoBERTa one with the stand-ins' tokenizers (``tokens.token_stats``
prints the count in every run). A limit computed on other texts would not be comparable with
the load.
"""

from __future__ import annotations

import random

from solution.standins.corpus import tweet

LOAD_TEXTS = 1024  # texts per run: k6 cycles through them, the limit runs each once per pass
LOAD_SEED = 0
EMPTY_RATIO = 0.005  # clients send "" about this often (shared/models.md)


def load_texts(n: int = LOAD_TEXTS, seed: int = LOAD_SEED) -> list[str]:
    """``n`` load texts, the same for the same ``n`` and ``seed``."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        if rng.random() < EMPTY_RATIO:
            out.append("")
            continue
        out.append(" ".join(tweet(rng) for _ in range(rng.choice((2, 2, 3)))))
    return out
