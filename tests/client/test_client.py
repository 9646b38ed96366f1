"""The client library against HTTP and gRPC front-ends on the shared engine: the same results
from all four clients and from raw HTTP, with and without per-request options, the served
models, and the three kinds of error."""

from __future__ import annotations

import asyncio
import json
import math
import socket
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import httpx
import orjson
import pytest
from transformers import AutoConfig, AutoTokenizer

from solution.client import (
    AsyncGrpcClient,
    AsyncHttpClient,
    ClientError,
    GrpcClient,
    HttpClient,
    ModelInfo,
    Prediction,
    Refused,
    Result,
    TimedOut,
    Unreachable,
    from_json,
    to_json,
)
from solution.client.grpc_client import wire_text
from solution.proto.classifier.v1 import classifier_pb2 as pb
from solution.server.engine.engine import Engine
from solution.server.engine.options import MAX_TOP_K
from tests.standin_texts import KNOWN, mismatches

TEXTS = [
    "",
    "This is how true happiness looks like 👍😜",
    "controls \u0000\u0007\t\n\u001f and NUL",
    "see https://t.co/AbC123 or 1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
    "Это был лучший концерт 我今天很高兴",
    "word " * 100,
    "lone \ud800 surrogate, and a pair \ud83d\ude00",  # a str JSON or surrogateescape can give
]

CLIENTS = ["http", "http-async", "grpc", "grpc-async"]


class Caller:
    """One client behind one async interface; sync clients run in a thread, since the servers
    run in this test's event loop."""

    def __init__(self, kind: str, target: str, timeout: float = 10.0):
        self.kind = kind
        make: dict[str, Callable[..., Any]] = {
            "http": HttpClient,
            "http-async": AsyncHttpClient,
            "grpc": GrpcClient,
            "grpc-async": AsyncGrpcClient,
        }
        self.client = make[kind](target, timeout)

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        fn = getattr(self.client, method)
        if self.kind.endswith("async"):
            return await fn(*args, **kwargs)
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def classify(self, text: str, **options: Any) -> Result:
        return await self.call("classify", text, **options)

    async def classify_batch(self, texts: list[str], **options: Any) -> list[Result]:
        return await self.call("classify_batch", texts, **options)

    async def list_models(self) -> list[ModelInfo]:
        return await self.call("list_models")

    async def close(self) -> None:
        if self.kind.endswith("async"):
            await self.client.close()
        else:
            self.client.close()


def target_of(frontends, kind: str) -> str:
    return frontends.grpc_target if kind.startswith("grpc") else frontends.http_target


@pytest.fixture(params=CLIENTS)
async def caller(request, frontends):
    c = Caller(request.param, target_of(frontends, request.param))
    yield c
    await c.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


async def test_every_client_returns_exactly_what_http_process_answers(frontends, engine: Engine):
    callers = [Caller(kind, target_of(frontends, kind)) for kind in CLIENTS]
    try:
        async with httpx.AsyncClient(base_url=f"http://{frontends.http_target}") as raw:
            # one request at a time, so each is a batch of its own and the float sums are equal
            for text in TEXTS:
                answer = await raw.post("/process", content=json.dumps(text))  # escapes surrogates
                for caller in callers:
                    got = await caller.classify(text)
                    assert list(got) == engine.keys
                    assert all(isinstance(p, Prediction) for p in got.values())
                    assert to_json(got) == answer.json(), (caller.kind, text[:30])
            answer = await raw.post("/process", content=json.dumps(TEXTS))
            for caller in callers:
                got_many = await caller.classify_batch(TEXTS)
                # byte for byte: the same keys in the same order, the same float64 scores
                assert orjson.dumps(to_json(got_many)) == answer.content, caller.kind
    finally:
        for caller in callers:
            await caller.close()


async def test_every_client_gets_the_rules_labels_of_known_texts(caller: Caller):
    """The trained stand-ins' answers, as each client returns them (``standins/rules.py``)."""
    results = await caller.classify_batch(list(KNOWN))
    for text, result in zip(KNOWN, results, strict=True):
        labels = {key: p.label for key, p in result.items()}
        assert not mismatches(text, labels), (caller.kind, text, mismatches(text, labels))
    one = await caller.classify("What a terrible day, everything went wrong")
    assert one["cardiffnlp"].label == "NEGATIVE" and one["ivanlau"].label == "English"


async def test_a_closed_port_is_unreachable():
    for kind in CLIENTS:
        c = Caller(kind, f"127.0.0.1:{closed_port()}")
        try:
            with pytest.raises(Unreachable, match="cannot reach"):
                await c.classify("hello")
        finally:
            await c.close()


async def test_a_refusal_carries_status_and_message(frontends, caller: Caller, settings):
    with pytest.raises(Refused) as info:
        await caller.classify_batch(["x"] * (settings.max_texts_per_request + 1))
    status = "INVALID_ARGUMENT" if caller.kind.startswith("grpc") else 400
    assert info.value.status == status
    assert info.value.message.startswith(f"at most {settings.max_texts_per_request} texts")
    assert str(status) in str(info.value) and "\n" not in str(info.value)


async def test_no_answer_within_the_timeout_is_timed_out(frontends, gate):
    await gate.close()  # the engine answers nothing until the gate opens
    for kind in CLIENTS:
        c = Caller(kind, target_of(frontends, kind), timeout=0.3)
        try:
            with pytest.raises(TimedOut):
                await c.classify("held up")
        finally:
            await c.close()


def test_errors_share_one_base():
    assert all(issubclass(e, ClientError) for e in (Unreachable, TimedOut, Refused))


def test_json_round_trip_keeps_order():
    value = {"b": {"score": 0.5, "label": "X"}, "a": {"score": 0.25, "label": "Y"}}
    result = from_json(value)
    assert result == {"b": Prediction(0.5, "X"), "a": Prediction(0.25, "Y")}
    assert list(to_json(result)) == ["b", "a"] and to_json([result]) == [value]


def test_wire_text_is_what_the_http_server_makes_of_the_same_str():
    assert wire_text("plain ✓") == "plain ✓"
    assert wire_text("a\ud800b") == "a\ufffdb"  # lone surrogate: U+FFFD, as the server makes it
    assert wire_text("\ud83d\ude00") == "😀"  # a pair, as JSON's \\ud83d\\ude00 decodes


# ---- per-request options and ListModels (issue 14) --------------------------------------------

LONG = "word " * 600  # over 512 tokens in both tokenizer families
OPTIONS: list[dict[str, Any]] = [
    {"models": ["jy46604790", "cardiffnlp"]},  # asked out of order: answered in model order
    {"top_k": 2},
    {"top_k": None},
    {"raw_scores": True},
    {"truncate": False},
    {"models": ["ivanlau"], "top_k": 3, "raw_scores": True, "truncate": False},
]


def assert_close(got: Any, expected: Any, where: object) -> None:
    """The same JSON shape, keys in the same order, labels equal, scores within 1e-6 (two requests
    may be cut into different batches, whose float sums differ in the last bits)."""
    if isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), where
        for g, e in zip(got, expected, strict=True):
            assert_close(g, e, where)
    elif "label" in expected:
        assert got["label"] == expected["label"], where
        assert abs(got["score"] - expected["score"]) <= 1e-6, where
    else:
        assert list(got) == list(expected), where
        for key in expected:
            assert_close(got[key], expected[key], where)


def long_text_message(standins: Path, key: str, text: str, limit: int = 512) -> str:
    """What the server must say of ``text`` with ``truncate: false``: its tokenizer's count."""
    count = len(AutoTokenizer.from_pretrained(standins / key)(text)["input_ids"])
    assert count > limit
    return f"the text has {count} tokens"


def expected_models(settings, standins: Path) -> list[dict[str, Any]]:
    """What the configuration says is served: models.json's keys in order, each stand-in's config
    as transformers reads it (architecture, id2label) with models.json's label overrides."""
    configured = json.loads(Path(settings.model_config).read_text())["models"]
    found = []
    for entry in configured:
        config = AutoConfig.from_pretrained(standins / entry["key"])
        labels = {int(i): label for i, label in config.id2label.items()}
        labels.update({int(i): label for i, label in entry["labels"].items()})
        found.append(
            {
                "key": entry["key"],
                "architecture": config.architectures[0],
                "labels": tuple(labels[i] for i in range(len(labels))),
            }
        )
    return found


async def test_every_option_answers_alike_on_every_client_and_as_http_process(frontends):
    callers = [Caller(kind, target_of(frontends, kind)) for kind in CLIENTS]
    texts = TEXTS  # a lone surrogate too: U+FFFD in the object form as in the bare one
    try:
        async with httpx.AsyncClient(base_url=f"http://{frontends.http_target}", timeout=30) as raw:
            for options in OPTIONS:
                body = json.dumps({"inputs": texts, **options})
                expected = (await raw.post("/process", content=body)).json()
                one = json.dumps({"inputs": texts[-1], **options})
                expected_one = (await raw.post("/process", content=one)).json()
                for caller in callers:
                    got = await caller.classify_batch(texts, **options)
                    assert_close(to_json(got), expected, (caller.kind, options))
                    got_one = await caller.classify(texts[-1], **options)
                    assert_close(to_json(got_one), expected_one, (caller.kind, options))
    finally:
        for caller in callers:
            await caller.close()


async def test_models_answers_only_those_keys_in_model_order(caller: Caller, engine: Engine):
    asked = ["jy46604790", "svalabs"]
    in_order = [k for k in engine.keys if k in asked]
    (result,) = await caller.classify_batch(["I love this"], models=asked)
    assert list(result) == in_order and all(isinstance(p, Prediction) for p in result.values())
    ranked = await caller.classify("I love this", models=asked, top_k=1)
    assert list(ranked) == in_order
    everything = await caller.classify("I love this")
    assert {k: everything[k] for k in in_order} == result  # the same answers, fewer of them


async def test_top_k_ranks_the_best_labels_and_none_ranks_every_label(caller: Caller):
    labels = {m.key: m.labels for m in await caller.list_models()}
    text = "Ce film est magnifique"
    top = await caller.classify(text)
    two = await caller.classify(text, top_k=2)
    every = await caller.classify(text, top_k=None)
    assert list(two) == list(every) == list(top)
    for key, ranking in every.items():
        assert isinstance(ranking, list)
        assert sorted(p.label for p in ranking) == sorted(labels[key])  # each label once
        scores = [p.score for p in ranking]
        assert scores == sorted(scores, reverse=True)
        assert abs(sum(scores) - 1) < 1e-5  # softmax probabilities
        best = top[key]
        assert isinstance(best, Prediction)
        assert ranking[0].label == best.label and abs(ranking[0].score - best.score) <= 1e-6
        assert two[key] == ranking[: min(2, len(ranking))]


async def test_raw_scores_are_logits_whose_softmax_is_the_probabilities(caller: Caller):
    functions = {m.key: m.function for m in await caller.list_models()}
    text = "Free crypto giveaway! Click here"
    probabilities = await caller.classify(text, top_k=None)
    logits = await caller.classify(text, top_k=None, raw_scores=True)
    top_logit = await caller.classify(text, raw_scores=True)
    assert list(logits) == list(probabilities)
    for key, ranking in logits.items():
        assert functions[key] == "softmax"  # the stand-ins: single-label classifiers
        assert isinstance(ranking, list)
        exp = {p.label: math.exp(p.score) for p in ranking}
        softmax = {label: e / sum(exp.values()) for label, e in exp.items()}
        probs = {p.label: p.score for p in probabilities[key]}  # type: ignore[union-attr]
        assert softmax.keys() == probs.keys()
        assert all(abs(softmax[label] - probs[label]) <= 1e-6 for label in probs), key
        assert max(abs(p.score - probs[p.label]) for p in ranking) > 0.5  # not probabilities
        assert top_logit[key] == ranking[0]  # the default shape: the best logit


async def test_truncate_false_refuses_a_long_text_with_its_token_count(
    frontends, standins_tiny: Path, engine: Engine
):
    xlmr = long_text_message(standins_tiny, "cardiffnlp", LONG)
    roberta = long_text_message(standins_tiny, "jy46604790", LONG)
    for kind in CLIENTS:
        c = Caller(kind, target_of(frontends, kind))
        status = "INVALID_ARGUMENT" if kind.startswith("grpc") else 400
        try:
            for models, message in ((None, xlmr), (["jy46604790"], roberta)):
                with pytest.raises(Refused) as info:
                    await c.classify(LONG, models=models, truncate=False)
                assert info.value.status == status
                assert info.value.message.startswith(message), (kind, info.value.message)
            assert list(await c.classify(LONG)) == engine.keys  # truncated by default
            short = await c.classify("short enough", truncate=False)
            assert to_json(short) == to_json(await c.classify("short enough"))
        finally:
            await c.close()


async def test_unknown_model_and_top_k_out_of_range_are_refused_with_the_servers_message(
    caller: Caller, engine: Engine
):
    status = "INVALID_ARGUMENT" if caller.kind.startswith("grpc") else 400
    with pytest.raises(Refused) as info:
        await caller.classify("x", models=["cardiffnlp", "nope"])
    assert info.value.status == status
    assert info.value.message == (
        f"models: unknown model 'nope'; the models are {', '.join(engine.keys)}"
    )
    with pytest.raises(Refused) as info:
        await caller.classify_batch(["x"], top_k=MAX_TOP_K + 1)
    assert info.value.status == status
    assert info.value.message == f"top_k: {MAX_TOP_K + 1} is not a count from 1 to {MAX_TOP_K}"


async def test_list_models_matches_the_servers_configuration(
    frontends, settings, standins_tiny: Path
):
    async with httpx.AsyncClient(base_url=f"http://{frontends.http_target}", timeout=30) as raw:
        served = (await raw.get("/models")).json()["models"]
    configured = expected_models(settings, standins_tiny)
    for kind in CLIENTS:
        c = Caller(kind, target_of(frontends, kind))
        try:
            models = await c.list_models()
        finally:
            await c.close()
        assert [m.to_json() for m in models] == served, kind
        assert [
            {"key": m.key, "architecture": m.architecture, "labels": m.labels} for m in models
        ] == configured
        for m in models:
            assert m.source == str(standins_tiny / m.key)
            assert (m.device, m.dtype, m.max_tokens) == ("cpu", "fp32", 512)
            assert m.tokenizer_family and m.function == "softmax"


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"models": "cardiffnlp"}, TypeError),  # a str would go out as its letters
        ({"models": ["cardiffnlp", 3]}, TypeError),
        ({"models": []}, ValueError),  # gRPC reads no models as every model
        ({"top_k": "3"}, TypeError),
        ({"top_k": True}, TypeError),
        ({"top_k": 0}, ValueError),  # gRPC reads 0 as every label
        ({"top_k": -1}, ValueError),
        ({"raw_scores": "yes"}, TypeError),
        ({"truncate": "false"}, TypeError),  # truthy: it would truncate
        ({"top_K": 3}, TypeError),  # a misspelt option
    ],
)
async def test_what_the_wire_cannot_carry_is_refused_before_sending(options, error):
    for kind in CLIENTS:
        c = Caller(kind, f"127.0.0.1:{closed_port()}")  # any I/O would raise Unreachable
        try:
            with pytest.raises(error):
                await c.classify("x", **options)
            with pytest.raises(error):
                await c.classify_batch(["x"], **options)
        finally:
            await c.close()


def test_without_options_the_http_request_is_the_contracts_bare_body(monkeypatch):
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        one = {"m": {"score": 0.5, "label": "A"}}
        inputs = json.loads(request.content)
        inputs = inputs["inputs"] if isinstance(inputs, dict) else inputs
        return httpx.Response(200, json=[one] * len(inputs) if isinstance(inputs, list) else one)

    real = httpx.Client
    monkeypatch.setattr(
        httpx, "Client", lambda **kw: real(transport=httpx.MockTransport(answer), **kw)
    )
    with HttpClient("127.0.0.1:1") as c:
        c.classify("hello 👍")
        c.classify("hello 👍", raw_scores=False, truncate=True, models=None)  # the defaults
        c.classify_batch(["a", "b"])
        c.classify("x", models=("svalabs",), top_k=None)
        c.classify_batch(["a", "b"], top_k=2, raw_scores=True, truncate=False)
    bodies = [r.content for r in sent]
    assert bodies[:3] == [orjson.dumps("hello 👍")] * 2 + [b'["a","b"]']  # as before options
    assert bodies[3] == b'{"inputs":"x","models":["svalabs"],"top_k":null}'
    assert bodies[4] == b'{"inputs":["a","b"],"top_k":2,"raw_scores":true,"truncate":false}'
    assert all(r.method == "POST" and r.url.path == "/process" for r in sent)
    assert all(r.headers["content-type"] == "application/json" for r in sent)


def test_without_options_the_grpc_request_is_the_contracts_message():
    received: list[tuple[str, bytes]] = []

    def handler(name: str, reply: bytes) -> grpc.RpcMethodHandler:
        def record(request: bytes, context: object) -> bytes:
            received.append((name, request))
            return reply

        return grpc.unary_unary_rpc_method_handler(record)  # raw bytes in and out

    replies = {
        "Classify": pb.ClassifyResponse().SerializeToString(),
        "ClassifyBatch": pb.ClassifyBatchResponse().SerializeToString(),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "classifier.v1.Classifier", {n: handler(n, r) for n, r in replies.items()}
            )
        ]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with GrpcClient(f"127.0.0.1:{port}") as c:
            c.classify("hello 👍")
            c.classify("hello 👍", raw_scores=False, truncate=True, models=None)
            c.classify_batch(["a", "b"])
            c.classify("x", models=["svalabs"], top_k=None)
            c.classify_batch(["a"], top_k=2, raw_scores=True, truncate=False)
    finally:
        server.stop(None)
    bare = pb.ClassifyRequest(text="hello 👍").SerializeToString()  # what the client always sent
    assert received[:3] == [
        ("Classify", bare),
        ("Classify", bare),
        ("ClassifyBatch", pb.ClassifyBatchRequest(texts=["a", "b"]).SerializeToString()),
    ]
    every_label = pb.ClassifyRequest.FromString(received[3][1]).options
    assert list(every_label.models) == ["svalabs"] and every_label.HasField("top_k")
    assert every_label.top_k == 0 and not every_label.HasField("truncate")  # 0: every label
    ranked = pb.ClassifyBatchRequest.FromString(received[4][1]).options
    assert (ranked.top_k, ranked.raw_scores, ranked.HasField("truncate")) == (2, True, True)
    assert not ranked.truncate and not ranked.models


def test_rankings_round_trip_through_json():
    value = {"m": [{"score": 0.75, "label": "A"}, {"score": 0.25, "label": "B"}]}
    assert from_json(value) == {"m": [Prediction(0.75, "A"), Prediction(0.25, "B")]}
    assert to_json(from_json(value)) == value


def test_model_info_reads_get_models_and_ignores_fields_it_does_not_know():
    entry = {
        "key": "m",
        "source": "org/m",
        "architecture": "XLMRobertaForSequenceClassification",
        "labels": ["A", "B"],
        "tokenizer_family": "m",
        "device": "cpu",
        "dtype": "fp32",
        "max_tokens": 512,
        "function": "softmax",
    }
    info = ModelInfo.from_fields({**entry, "added_later": 1})
    assert info.labels == ("A", "B") and info.to_json() == entry
    assert list(info.to_json()) == list(entry)  # GET /models' field order
