"""Per-request options: their checks (pure), and what the engine does with them on the tiny
stand-ins: only the asked models are computed, requests asking for different models share
batches, rankings and raw scores agree with a plain forward, ``truncate: false`` names the count.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

import pytest
import torch

from solution.server.compute.scoring import Prediction
from solution.server.engine.engine import Engine
from solution.server.engine.options import DEFAULT, MAX_TOP_K, Options
from solution.server.errors import InvalidInput
from tests.conftest import ComputeGate, Reports, until
from tests.tolerances import FP32_SCORE_TOLERANCE

KEYS = ("cardiffnlp", "ivanlau", "svalabs", "EIStakovskii", "jy46604790")
TEXTS = [
    "Ce film est magnifique, merci beaucoup",
    "Это был лучший концерт",
    "FREE bitcoin giveaway, click here",
    "",
]


@pytest.mark.parametrize(
    "options, message",
    [
        (Options(models=()), "models: name at least one model"),
        (Options(models=("cardiffnlp", "nope")), "unknown model 'nope'; the models are cardiff"),
        (Options(models=("ivanlau", "ivanlau")), "each model may be named once"),
        (Options(top_k=-1), "top_k: -1 is not a count"),
        (Options(top_k=MAX_TOP_K + 1), f"top_k: {MAX_TOP_K + 1} is not a count"),
    ],
)
def test_check_refuses_naming_the_field(options: Options, message: str):
    with pytest.raises(InvalidInput, match=message):
        options.check(KEYS)


@pytest.mark.parametrize(
    "options",
    [DEFAULT, Options(models=("jy46604790", "cardiffnlp")), Options(top_k=None), Options(top_k=3)],
)
def test_check_accepts_what_can_be_served(options: Options):
    options.check(KEYS)


def same(a: Prediction | list[Prediction], b: Prediction | list[Prediction]) -> bool:
    """Equal labels, scores equal up to float32 noise (another batch pads differently)."""
    assert isinstance(a, Prediction) and isinstance(b, Prediction)
    return a.label == b.label and a.score == pytest.approx(b.score, abs=FP32_SCORE_TOLERANCE)


def plain(engine: Engine, text: str) -> dict[str, torch.Tensor]:
    """Each model's logits for one text alone (no batching, no padding)."""
    out = {}
    for m in engine.models:
        enc = m.tokenizer(text, truncation=True, max_length=m.max_tokens, return_tensors="pt")
        with torch.inference_mode():
            out[m.key] = m.model(**enc).logits.float()[0, : len(m.labels)]
    return out


@pytest.fixture
def forwarded(engine: Engine) -> Iterator[Counter[str]]:
    """Rows each model's forward computed (a hook on the real modules; nothing faked)."""
    rows: Counter[str] = Counter()
    handles = []
    for m in engine.models:

        def hook(module, args, kwargs, output, key=m.key):
            ids = kwargs.get("input_ids", args[0] if args else None)
            rows[key] += int(ids.shape[0])

        handles.append(m.model.register_forward_hook(hook, with_kwargs=True))
    yield rows
    for handle in handles:
        handle.remove()


@pytest.fixture
def encoded(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Texts each tokenizer family encoded."""
    texts: Counter[str] = Counter()
    for family in engine.families:

        def encode(batch, real=family.encode, name=family.name):
            texts[name] += len(batch)
            return real(batch)

        monkeypatch.setattr(family, "encode", encode)
    return texts


async def test_only_the_asked_models_are_tokenized_and_computed(
    engine: Engine, forwarded: Counter[str], encoded: Counter[str]
):
    await until(lambda: engine.idle)
    full = await engine.submit(TEXTS)
    forwarded.clear()
    encoded.clear()
    results = await engine.submit(
        [t + " subset" for t in TEXTS], options=Options(models=("ivanlau",))
    )
    assert [list(r) for r in results] == [["ivanlau"]] * len(TEXTS)
    assert set(forwarded) == {"ivanlau"} and forwarded["ivanlau"] == len(TEXTS)
    ivanlau_family = next(f.name for f in engine.families if 1 in f.members)
    assert set(encoded) == {ivanlau_family}  # jy46604790's tokenizer never ran
    again = await engine.submit(TEXTS, options=Options(models=("jy46604790", "ivanlau")))
    for subset, whole in zip(again, full, strict=True):
        assert list(subset) == ["ivanlau", "jy46604790"]  # the configured order, not the asked
        for key, prediction in subset.items():
            assert same(prediction, whole[key])


async def test_requests_for_different_models_share_one_batch(
    engine: Engine, reports: Reports, forwarded: Counter[str]
):
    full = await engine.submit(TEXTS)
    with ComputeGate(engine) as gate:
        held, queued = await gate.fill_pipeline()
        asked = [("cardiffnlp",), ("jy46604790",), None, ("svalabs", "ivanlau")]
        futures = [
            asyncio.ensure_future(engine.submit([text], options=Options(models=models)))
            for text, models in zip(TEXTS, asked, strict=True)
        ]
        same_text = asyncio.ensure_future(
            engine.submit([TEXTS[1]], options=Options(models=("EIStakovskii",)))
        )
        await until(lambda: engine.waiting_texts == 1 + len(TEXTS) + 1)
        forwarded.clear()
        gate.release()
        answers = await asyncio.wait_for(asyncio.gather(*futures, same_text), 10)
        await asyncio.wait_for(asyncio.gather(held, queued), 10)
    batch = await reports.wait_for(lambda r: r.texts == 1 + len(TEXTS) + 1)
    assert batch.unique_texts == 1 + len(TEXTS)  # the two requests for TEXTS[1] share a row
    asked_all, wholes = [*asked, ("EIStakovskii",)], [*full, full[1]]
    for (answer,), models, whole in zip(answers, asked_all, wholes, strict=True):
        assert list(answer) == [k for k in engine.keys if models is None or k in models]
        assert all(same(answer[k], whole[k]) for k in answer)
    # every model ran over exactly the rows that asked for it, plus "queued first" (all models)
    assert forwarded == {
        "cardiffnlp": 1 + 2,  # TEXTS[0], TEXTS[2]
        "ivanlau": 1 + 2,  # TEXTS[2], TEXTS[3]
        "svalabs": 1 + 2,
        "EIStakovskii": 1 + 2,  # TEXTS[1] (asked by the last request), TEXTS[2]
        "jy46604790": 1 + 2,  # TEXTS[1], TEXTS[2]
    }


async def test_top_k_ranks_labels_by_probability_like_a_plain_forward(engine: Engine):
    single, three, every, beyond = await asyncio.gather(
        engine.submit(TEXTS),
        engine.submit(TEXTS, options=Options(top_k=3)),
        engine.submit(TEXTS, options=Options(top_k=None)),
        engine.submit(TEXTS, options=Options(top_k=MAX_TOP_K)),
    )
    for text, one, top3, top_all, top_max in zip(TEXTS, single, three, every, beyond, strict=True):
        logits = plain(engine, text)
        for m in engine.models:
            ranked = top_all[m.key]
            assert isinstance(ranked, list) and len(ranked) == len(m.labels)
            assert top_max[m.key] == ranked  # more than the labels: every label, once
            probs = logits[m.key].softmax(-1)
            assert [p.label for p in ranked] == [
                m.labels[i] for i in probs.argsort(descending=True)
            ]
            for p in ranked:
                assert p.score == pytest.approx(float(probs[m.labels.index(p.label)]), abs=1e-4)
            assert sum(p.score for p in ranked) == pytest.approx(1, abs=1e-5)
            assert top3[m.key] == ranked[:3]
            assert one[m.key] == ranked[0]  # the contract's answer is the ranking's head


async def test_raw_scores_are_the_logits(engine: Engine):
    raw, raw_all = await asyncio.gather(
        engine.submit(TEXTS, options=Options(raw_scores=True)),
        engine.submit(TEXTS, options=Options(raw_scores=True, top_k=None)),
    )
    for text, one, every in zip(TEXTS, raw, raw_all, strict=True):
        logits = plain(engine, text)
        for m in engine.models:
            best = int(logits[m.key].argmax())
            prediction = one[m.key]
            assert isinstance(prediction, Prediction)
            assert prediction.label == m.labels[best]
            assert prediction.score == pytest.approx(float(logits[m.key][best]), abs=1e-4)
            by_label = {p.label: p.score for p in every[m.key]}
            expected = {label: float(v) for label, v in zip(m.labels, logits[m.key], strict=True)}
            assert by_label == pytest.approx(expected, abs=1e-4)


async def test_truncate_false_refuses_a_long_text_naming_its_token_count(engine: Engine):
    long_text = "mot " * 700
    family = engine.families[0]
    count = len(engine.models[0].tokenizer(long_text)["input_ids"])
    assert count > family.max_tokens
    with pytest.raises(InvalidInput, match=f"the text has {count} tokens; cardiffnlp, .* 512"):
        await engine.submit([long_text], options=Options(truncate=False))
    with pytest.raises(InvalidInput, match=f"text 1 has {count} tokens"):
        await engine.submit(["short", long_text], options=Options(truncate=False))
    # a text that fits is answered as usual; truncation stays the default
    fits, cut = await asyncio.gather(
        engine.submit(["short"], options=Options(truncate=False)), engine.submit([long_text])
    )
    alone = (await engine.submit(["short"]))[0]
    assert all(same(fits[0][k], alone[k]) for k in engine.keys)
    assert list(cut[0]) == engine.keys
    # only the families of the asked models decide
    roberta = next(f for f in engine.families if 4 in f.members)
    jy_count = len(engine.models[4].tokenizer(long_text)["input_ids"])
    with pytest.raises(InvalidInput, match=f"has {jy_count} tokens; jy46604790 accept"):
        await engine.submit([long_text], options=Options(models=("jy46604790",), truncate=False))
    assert roberta.max_tokens == 512
    await until(lambda: engine.idle)


async def test_default_options_answer_exactly_as_no_options(engine: Engine):
    assert await engine.submit(TEXTS, options=Options()) == await engine.submit(TEXTS)
