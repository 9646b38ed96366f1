"""The ordered response pipeline alone: start limits and answer order, no I/O."""

from __future__ import annotations

from solution.server.http.messages import Request, RequestHead, Response
from solution.server.http.pipeline import Exchange, ResponsePipeline


def exchange(name: str, method: str = "GET") -> Exchange:
    return Exchange(Request(method, f"/{name}", [], b"", True), 0.0, True)


def started(pipeline: ResponsePipeline) -> list[str]:
    names = []
    while (e := pipeline.next_to_start()) is not None:
        names.append(e.info.path)
    return names


def test_at_most_limit_start_and_the_rest_start_as_answers_leave():
    p = ResponsePipeline(2)
    exchanges = [exchange(n) for n in "abcd"]
    for e in exchanges:
        p.add(e)
    assert started(p) == ["/a", "/b"]
    exchanges[1].response = Response(200, b"")  # b is done, but a is still ahead
    assert p.pop_answered() is None and started(p) == []
    exchanges[0].response = Response(200, b"")
    assert p.pop_answered() is exchanges[0]
    assert started(p) == ["/c"]
    assert p.pop_answered() is exchanges[1]
    assert started(p) == ["/d"] and len(p) == 2


def test_an_answer_known_on_arrival_is_never_started_and_leaves_in_its_slot():
    p = ResponsePipeline(4)
    a = exchange("a")
    refused = Exchange(RequestHead(None, None), 0.0, False, Response(400, b""))
    p.add(a)
    p.add(refused)
    assert started(p) == ["/a"]
    assert p.pop_answered() is None
    a.response = Response(200, b"")
    assert [p.pop_answered(), p.pop_answered(), p.pop_answered()] == [a, refused, None]


def test_abandon_returns_everything_unanswered_in_order():
    p = ResponsePipeline(1)
    exchanges = [exchange(n) for n in "abc"]
    for e in exchanges:
        p.add(e)
    started(p)
    assert p.abandon() == exchanges and len(p) == 0 and started(p) == []


def test_head_exchanges_are_marked_to_go_without_a_body():
    assert exchange("a", "HEAD").head_only and not exchange("a", "GET").head_only
    assert not Exchange(RequestHead(None, None), 0.0, False).head_only
