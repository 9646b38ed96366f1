"""Routes on the real engine (tiny stand-ins): decoding, the contract, and every row of the
error table."""

from __future__ import annotations

import time

import orjson
import pytest

from solution.server import errors
from solution.server.engine.options import Options
from solution.server.engine.service import Service
from solution.server.errors import InvalidInput
from solution.server.http.protocol import Request
from solution.server.http.routes import (
    ERROR_STATUS,
    RETRY_AFTER,
    Routes,
    decode_request,
    decode_texts,
    service_error_response,
)
from tests.conftest import bound_service, service_errors
from tests.tolerances import FP32_SCORE_TOLERANCE


def req(method: str, path: str, body: bytes = b"") -> Request:
    return Request(method, path, [], body, True)


@pytest.mark.parametrize(
    "body, texts, single",
    [
        (b'""', [""], True),
        (b'"a\\u0000b\\u001f"', ["a\x00b\x1f"], True),
        (b'["x", "", "\\ud83d\\ude00"]', ["x", "", "😀"], False),
        # an escaped lone surrogate (JavaScript's JSON.stringify of a cut emoji) is valid JSON
        # but no character: it becomes U+FFFD, as WHATWG's USVString conversion does
        (b'"\\ud800 lone surrogate"', ["\ufffd lone surrogate"], True),
        (b'["\\udc00", "\\ud83d"]', ["\ufffd", "\ufffd"], False),
        (b"[]", [], False),
    ],
)
def test_decode_accepts_strings_and_arrays_of_strings(body, texts, single):
    assert decode_texts(body) == (texts, single)


@pytest.mark.parametrize(
    "body, message",
    [
        (b"", "not valid JSON"),
        (b"\xff\xfe", "not valid UTF-8"),
        (b'"\xed\xa0\x80"', "not valid UTF-8"),  # an encoded surrogate (RFC 3629 3)
        (b'"\xc0\xaf"', "not valid UTF-8"),  # an overlong encoding
        (b'"unterminated', "not valid JSON"),
        (b"[" * 5000 + b"]" * 5000, "not valid JSON"),
        (b"42", "got a number"),
        (b'{"text": "x"}', "unknown field 'text'"),
        (b"null", "got null"),
        (b'["a", 1]', "every element"),
        (b'["a", ["b"]]', "every element"),
    ],
)
def test_decode_rejects_everything_else_with_a_clear_message(body, message):
    with pytest.raises(InvalidInput, match=message):
        decode_texts(body)


async def test_more_texts_than_the_limit_are_refused_by_the_service(engine):
    response = await Routes(bound_service(engine, 4))(
        req("POST", "/process", b'["a","b","c","d","e"]')
    )
    assert response.status == 400 and b"at most 4 texts per request, got 5" in response.body


def test_every_service_error_has_a_status_and_retry_hints_where_retrying_helps():
    assert set(ERROR_STATUS) == service_errors()  # every subclass, however deep
    for cls in service_errors():
        response = service_error_response(cls("why"))
        assert response.status == ERROR_STATUS[cls]
        assert orjson.loads(response.body) == {"error": "why"}
        assert ((b"retry-after", b"1") in response.headers) == (cls in RETRY_AFTER)
    assert ERROR_STATUS[errors.InvalidInput] == 400
    assert ERROR_STATUS[errors.Overloaded] == 503


async def test_process_answers_the_contract(engine):
    routes = Routes(bound_service(engine, 4))
    response = await routes(req("POST", "/process", b'"This is how true happiness looks like"'))
    assert response.status == 200
    body = orjson.loads(response.body)
    assert list(body) == ["cardiffnlp", "ivanlau", "svalabs", "EIStakovskii", "jy46604790"]
    for prediction in body.values():
        assert set(prediction) == {"score", "label"} and prediction["score"] > 0


async def test_process_array_answers_one_object_per_text_in_order(engine):
    routes = Routes(bound_service(engine, 4))
    single = orjson.loads((await routes(req("POST", "/process", b'"b"'))).body)
    many = orjson.loads((await routes(req("POST", "/process", b'["a", "b", ""]'))).body)
    assert len(many) == 3 and list(many[1]) == list(single)
    for key, prediction in single.items():  # padded in a batch: equal up to float noise
        assert many[1][key]["label"] == prediction["label"]
        assert many[1][key]["score"] == pytest.approx(prediction["score"], abs=FP32_SCORE_TOLERANCE)


async def test_unknown_path_404_and_wrong_method_405_with_allow(engine):
    routes = Routes(bound_service(engine, 4))
    assert (await routes(req("GET", "/nope"))).status == 404
    response = await routes(req("GET", "/process"))
    assert response.status == 405 and (b"allow", b"POST") in response.headers


async def test_head_is_answered_like_get_where_get_is_allowed(engine):
    routes = Routes(bound_service(engine, 4))
    for path in ("/health", "/ready"):
        head, get = await routes(req("HEAD", path)), await routes(req("GET", path))
        assert (head.status, head.body) == (get.status, get.body)
    response = await routes(req("HEAD", "/process"))
    assert response.status == 405 and (b"allow", b"POST") in response.headers
    response = await routes(req("POST", "/health"))
    assert response.status == 405 and (b"allow", b"GET, HEAD") in response.headers


async def test_process_hands_the_request_deadline_to_the_engine(engine):
    routes = Routes(bound_service(engine, 4))
    late = Request("POST", "/process", [], b'"too late"', True, deadline=time.monotonic() - 1)
    response = await routes(late)
    assert response.status == 504 and b"deadline" in response.body
    soon = Request("POST", "/process", [], b'"in time"', True, deadline=time.monotonic() + 60)
    assert (await routes(soon)).status == 200


async def test_health_and_ready(engine):
    assert (await Routes(bound_service(engine, 4))(req("GET", "/health"))).status == 200
    assert (await Routes(bound_service(engine, 4))(req("GET", "/ready"))).status == 200
    loading = Routes(Service(4))
    assert (await loading(req("GET", "/health"))).status == 200
    assert (await loading(req("GET", "/ready"))).status == 503
    assert (await loading(req("POST", "/process", b'"x"'))).status == 503


# ---- the object form (per-request options) ----------------------------------------------------


@pytest.mark.parametrize(
    "body, texts, single, options",
    [
        (b'{"inputs": "x"}', ["x"], True, Options()),
        (b'{"inputs": ["x", ""]}', ["x", ""], False, Options()),
        (
            b'{"inputs": "x", "models": ["jy46604790"], "top_k": 2, "raw_scores": true}',
            ["x"],
            True,
            Options(models=("jy46604790",), top_k=2, raw_scores=True),
        ),
        (b'{"inputs": [], "top_k": null}', [], False, Options(top_k=None)),
        (b'{"inputs": "x", "truncate": false}', ["x"], True, Options(truncate=False)),
        (b'{"inputs": "x", "models": null, "top_k": 1}', ["x"], True, Options(top_k=1)),
        # a lone surrogate inside the object form becomes U+FFFD too (it was a 500 from the
        # tokenizer: the replacement did not look inside objects)
        (b'{"inputs": ["a \\ud800 b"]}', ["a \ufffd b"], False, Options()),
    ],
)
def test_decode_accepts_the_object_form(body, texts, single, options):
    assert decode_request(body) == (texts, single, options)


@pytest.mark.parametrize(
    "body, message",
    [
        (b"{}", 'needs "inputs"'),
        (b'{"input": "x"}', "unknown field 'input'; an object body takes inputs, models"),
        (b'{"inputs": 5}', "inputs: expected a JSON string or an array of strings, got a number"),
        (b'{"inputs": {"inputs": "x"}}', "inputs: expected .* got an object"),
        (b'{"inputs": ["x", 1]}', "every element of inputs's array"),
        (b'{"inputs": "x", "models": "ivanlau"}', "models: expected an array of model names"),
        (b'{"inputs": "x", "models": [1]}', "models: expected an array of model names"),
        (b'{"inputs": "x", "top_k": 0}', "top_k: expected a count from 1 up, or null"),
        (b'{"inputs": "x", "top_k": -3}', "top_k: expected a count"),
        (b'{"inputs": "x", "top_k": 2.5}', "top_k: expected a count"),
        (b'{"inputs": "x", "top_k": true}', "top_k: expected a count"),
        (b'{"inputs": "x", "top_k": "3"}', "top_k: expected a count"),
        (b'{"inputs": "x", "raw_scores": 1}', "raw_scores: expected true or false, got a number"),
        (b'{"inputs": "x", "truncate": "no"}', "truncate: expected true or false, got a string"),
        (b'{"inputs": "x", "truncate": null}', "truncate: expected true or false, got null"),
        # the bare and object forms do not mix
        (b'["x", {"inputs": "y"}]', "an array holds strings only; options go in one object"),
        (b'[{"inputs": "y", "top_k": 1}]', "an array holds strings only"),
        (b'{"inputs": [{"inputs": "y"}]}', "inputs: an array holds strings only"),
    ],
)
def test_decode_refuses_a_bad_object_naming_the_field(body, message):
    with pytest.raises(InvalidInput, match=message):
        decode_request(body)


async def test_options_over_http_shape_the_answer(engine):
    routes = Routes(bound_service(engine))
    body = b'{"inputs": ["Ce film est magnifique", ""], "models": ["jy46604790", "ivanlau"]}'
    subset = orjson.loads((await routes(req("POST", "/process", body))).body)
    assert [list(r) for r in subset] == [["ivanlau", "jy46604790"]] * 2  # configured order
    assert all(set(p) == {"label", "score"} for r in subset for p in r.values())

    body = b'{"inputs": "Ce film est magnifique", "top_k": 3}'
    ranked = orjson.loads((await routes(req("POST", "/process", body))).body)
    assert list(ranked) == engine.keys
    labels = {m.key: m.labels for m in engine.models}
    for key, answer in ranked.items():
        assert len(answer) == min(3, len(labels[key]))
        assert [p["score"] for p in answer] == sorted((p["score"] for p in answer), reverse=True)
        assert all(p["label"] in labels[key] for p in answer)
    every = await routes(req("POST", "/process", b'{"inputs": "x", "top_k": null}'))
    assert all(len(v) == len(labels[k]) for k, v in orjson.loads(every.body).items())

    refused = await routes(req("POST", "/process", b'{"inputs": "x", "models": ["nope"]}'))
    assert refused.status == 400
    assert orjson.loads(refused.body) == {
        "error": "models: unknown model 'nope'; the models are " + ", ".join(engine.keys)
    }
    text = "mot " * 700
    count = len(engine.models[0].tokenizer(text)["input_ids"])
    too_long = await routes(
        req("POST", "/process", orjson.dumps({"inputs": text, "truncate": False}))
    )
    assert too_long.status == 400
    assert f"the text has {count} tokens".encode() in too_long.body


async def test_models_route_describes_every_served_model(engine):
    response = await Routes(bound_service(engine))(req("GET", "/models"))
    assert response.status == 200
    models = orjson.loads(response.body)["models"]
    assert [m["key"] for m in models] == engine.keys
    family_of = {m: f.name for f in engine.families for m in f.members}
    for i, (info, model) in enumerate(zip(models, engine.models, strict=True)):
        assert info == {
            "key": model.key,
            "source": model.spec.source,
            "architecture": type(model.model).__name__,
            "labels": list(model.labels),
            "tokenizer_family": family_of[i],
            "device": "cpu",
            "dtype": "fp32",
            "max_tokens": 512,
            "function": "softmax",
        }
