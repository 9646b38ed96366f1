"""Parity of served answers: the same texts answered by different paths of the engine must get the
same labels and (nearly) the same scores.

The trained tiny stand-ins answer each text differently (``standins/rules.py``), so a path that
hands one text's result to another, drops padding masks or mixes up rows changes labels here; with
random-weight models every text got the same label and these comparisons could not fail.

Each comparison reports label agreement, the largest score difference and the distribution of the
margin (top-1 minus top-2 probability, from the fp32 models) over a few hundred texts: in its
assertion message, and as a printed line (``pytest -s``). Only the engine's public API is used
(``build_engine`` -> ``Engine``, ``start``, ``warm_up``, ``submit``), through ``classify`` below.
"""

from __future__ import annotations

import asyncio
import random
import statistics
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from solution.server import config
from solution.server.app import build_engine
from solution.server.compute.scoring import Prediction
from solution.server.config import cpu_has_native_bf16
from solution.server.engine.engine import Engine
from solution.standins.corpus import labelled_texts, reference_texts
from tests.tolerances import FP32_SCORE_TOLERANCE

Result = dict[str, Prediction]

# bf16 keeps 8 bits of mantissa: scores move by up to a few hundredths on these small models
BF16_SCORE_TOLERANCE = 0.05
BF16_MIN_AGREEMENT = 0.97


def parity_texts() -> list[str]:
    """300 texts: held-back single-language texts (labels the rules decide) and reference-shaped
    tweets (mixed languages, noise, long ASCII runs), so batches mix very different lengths."""
    texts = [s.text for s in labelled_texts(200, "heldout", seed=41)]
    texts += reference_texts(100, seed=42)
    return texts


async def classify(engine: Engine, texts: Sequence[str], *, alone: bool = False) -> list[Result]:
    """The one place these tests call the engine: all texts in one request, or one request per
    text, each awaited before the next (so each is a batch of its own)."""
    if alone:
        return [(await engine.submit([t]))[0] for t in texts]
    return await engine.submit(list(texts))


@asynccontextmanager
async def started(settings: config.Settings) -> AsyncIterator[Engine]:
    """A fresh engine on the tiny stand-ins with the given settings (e.g. another micro-batch
    size or dtype), started and warmed up like the service's."""
    engine = await asyncio.to_thread(build_engine, settings)
    engine.start()
    try:
        await engine.warm_up(["warm", ""])
        yield engine
    finally:
        await asyncio.to_thread(engine.stop)


@dataclass
class Comparison:
    name: str
    texts: int
    agreement: float  # share of (text, model) pairs with the same label
    max_score_diff: float
    disagreements: list[tuple[int, str, float]]  # (text index, model, fp32 margin)
    margins: dict[str, float]  # margin quantiles over every (text, model)

    def line(self) -> str:
        m = self.margins
        return (
            f"{self.name}: {self.texts} texts x 5 models, label agreement {self.agreement:.2%}, "
            f"largest score difference {self.max_score_diff:.2e}, margin (top-1 - top-2) "
            f"min {m['min']:.3f} p5 {m['p5']:.3f} p25 {m['p25']:.3f} median {m['median']:.3f}, "
            f"disagreements {self.disagreements[:5]}"
        )


def fp32_margins(folder: Path, keys: Sequence[str], texts: Sequence[str]) -> np.ndarray:
    """[text, model] top-1 minus top-2 probability of the fp32 stand-ins, run directly."""
    out = np.zeros((len(texts), len(keys)))
    for m, key in enumerate(keys):
        tokenizer = AutoTokenizer.from_pretrained(folder / key)
        model = AutoModelForSequenceClassification.from_pretrained(folder / key).eval()
        for i, text in enumerate(texts):
            enc = tokenizer(text, truncation=True, max_length=512, return_tensors="pt")
            with torch.inference_mode():
                probs = model(**enc).logits.softmax(-1)[0]
            top = probs.topk(2).values
            out[i, m] = float(top[0] - top[1])
    return out


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return parity_texts()


@pytest.fixture(scope="module")
def margins(standins_tiny: Path, engine: Engine, texts: list[str]) -> np.ndarray:
    return fp32_margins(standins_tiny, engine.keys, texts)


def compare(name: str, a: Sequence[Result], b: Sequence[Result], margins: np.ndarray) -> Comparison:
    assert len(a) == len(b)
    keys = list(a[0])
    same = 0
    diff = 0.0
    disagreements = []
    for i, (ra, rb) in enumerate(zip(a, b, strict=True)):
        assert list(ra) == list(rb) == keys
        for m, key in enumerate(keys):
            if ra[key].label == rb[key].label:
                same += 1
                diff = max(diff, abs(ra[key].score - rb[key].score))
            else:
                disagreements.append((i, key, round(float(margins[i, m]), 5)))
    flat = sorted(margins.ravel().tolist())
    quantiles = statistics.quantiles(flat, n=100)
    comparison = Comparison(
        name,
        len(a),
        same / (len(a) * len(keys)),
        diff,
        disagreements,
        {"min": flat[0], "p5": quantiles[4], "p25": quantiles[24], "median": quantiles[49]},
    )
    print(comparison.line())
    return comparison


def assert_fp32_parity(c: Comparison) -> None:
    """Equal labels, scores equal to float noise; a label may differ only where the two best
    classes are closer than that noise."""
    assert c.max_score_diff < FP32_SCORE_TOLERANCE, c.line()
    assert all(margin < FP32_SCORE_TOLERANCE for _, _, margin in c.disagreements), c.line()


def test_the_texts_are_far_from_uniform(margins):
    """The premise of every comparison here: answers differ from text to text, and most are
    decided by a wide margin (random weights gave margins near 0 for every text)."""
    assert statistics.median(margins.ravel().tolist()) > 0.5
    assert (margins > 0.1).mean() > 0.8


async def test_batched_equals_alone(engine, texts, margins):
    together = await classify(engine, texts)
    alone = await classify(engine, texts, alone=True)
    assert_fp32_parity(compare("batched vs alone", together, alone, margins))


async def test_duplicated_equals_unique(engine, texts, margins):
    rng = random.Random(5)
    order = list(range(len(texts))) * 2  # every text twice, in shuffled order
    rng.shuffle(order)
    duplicated = await classify(engine, [texts[i] for i in order])
    unique = await classify(engine, texts)
    first: dict[int, int] = {}
    second: dict[int, int] = {}
    for pos, i in enumerate(order):
        (second if i in first else first)[i] = pos
    # both copies of a text (in one batch, deduplicated, or in two batches) and the unique one
    copies = [duplicated[first[i]] for i in range(len(texts))]
    others = [duplicated[second[i]] for i in range(len(texts))]
    assert_fp32_parity(compare("duplicated: first vs second copy", copies, others, margins))
    assert_fp32_parity(compare("duplicated vs unique", copies, unique, margins))


async def test_micro_batched_equals_one_call(settings, texts, margins):
    async with started(settings.replace(micro_batch_tokens=600)) as small:
        micro = await classify(small, texts)
    async with started(settings.replace(micro_batch_tokens=1_000_000)) as large:
        one_call = await classify(large, texts)
    assert_fp32_parity(compare("micro-batched vs one call", micro, one_call, margins))


@pytest.mark.skipif(
    not cpu_has_native_bf16(), reason="this CPU has no native bf16 (avx512_bf16/amx)"
)
async def test_bf16_agrees_with_fp32(engine, settings, texts, margins):
    fp32 = await classify(engine, texts)
    async with started(settings.replace(dtype="bf16")) as bf16_engine:
        bf16 = await classify(bf16_engine, texts)
    c = compare("bf16 vs fp32", bf16, fp32, margins)
    assert c.agreement >= BF16_MIN_AGREEMENT, c.line()
    assert c.max_score_diff < BF16_SCORE_TOLERANCE, c.line()
    # a label may flip only where fp32 itself hardly decides
    assert all(margin < 2 * BF16_SCORE_TOLERANCE for _, _, margin in c.disagreements), c.line()
