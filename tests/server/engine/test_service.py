"""The service both front-ends call: readiness, the texts limit, the engine binding, observation."""

from __future__ import annotations

from typing import Any

import pytest

from solution.server.engine.service import OTHER_ROUTE, Service
from solution.server.errors import InvalidInput, NotReady


class FakeEngine:
    def __init__(self) -> None:
        self.ready = True
        self.accepting = True
        self.failure: BaseException | None = None
        self.calls: list[tuple[list[str], Any, str]] = []
        self.keys = ["m"]

    async def submit(self, texts, *, deadline=None, options=None, origin="", client=None):
        self.calls.append((list(texts), deadline, origin))
        return [{"m": text} for text in texts]


async def test_before_the_engine_is_bound_calls_are_not_ready():
    service = Service(4)
    with pytest.raises(NotReady, match="models are still loading"):
        await service.classify(["x"], deadline=None, protocol="http")
    assert not service.ready and service.not_ready_reason() == "models loading"


async def test_classify_hands_texts_deadline_and_protocol_to_the_engine():
    service, engine = Service(4), FakeEngine()
    service.bind(engine)  # type: ignore[arg-type]
    assert await service.classify(["a", "b"], deadline=12.5, protocol="grpc") == [
        {"m": "a"},
        {"m": "b"},
    ]
    assert engine.calls == [(["a", "b"], 12.5, "grpc")]


async def test_the_texts_limit_is_checked_once_for_every_protocol():
    service, engine = Service(2), FakeEngine()
    service.bind(engine)  # type: ignore[arg-type]
    for protocol in ("http", "grpc"):
        with pytest.raises(InvalidInput, match="at most 2 texts per request, got 3"):
            await service.classify(["a", "b", "c"], deadline=None, protocol=protocol)
    assert engine.calls == []


@pytest.mark.parametrize(
    "ready, accepting, failure, reason",
    [
        (False, True, None, "models loading"),
        (False, False, None, "shutting down"),
        (False, False, RuntimeError("x"), "the engine failed; restarting"),
    ],
)
def test_not_ready_says_why(ready, accepting, failure, reason):
    service, engine = Service(2), FakeEngine()
    engine.ready, engine.accepting, engine.failure = ready, accepting, failure
    service.bind(engine)  # type: ignore[arg-type]
    assert not service.ready and service.not_ready_reason() == reason


def test_observed_routes_are_bounded_per_protocol():
    seen: list[tuple[str, str, str, float]] = []
    service = Service(2, lambda *args: seen.append(args))
    service.serve_routes("http", ["/process", "/health"])
    service.serve_routes("grpc", ["Classify"])
    service.observe("http", "/process", "200", 0.5)
    service.observe("http", "/random/path/123", "404", 0.1)
    service.observe("http", None, "400", 0.0)  # the parser refused it: no path known
    service.observe("grpc", "Classify", "OK", 0.2)
    service.observe("grpc", "/process", "OK", 0.2)  # another protocol's route is not this one's
    assert [(p, r, s) for p, r, s, _ in seen] == [
        ("http", "/process", "200"),
        ("http", OTHER_ROUTE, "404"),
        ("http", OTHER_ROUTE, "400"),
        ("grpc", "Classify", "OK"),
        ("grpc", OTHER_ROUTE, "OK"),
    ]
