"""Flow control alone: reading pauses while any reason holds."""

from __future__ import annotations

from solution.server.http.flow import PIPELINE, WRITE, FlowControl
from tests.server.http.doubles import MockTransport


def test_reading_resumes_only_when_the_last_reason_clears():
    transport = MockTransport()
    flow = FlowControl(transport)  # type: ignore[arg-type]
    flow.pause(PIPELINE)
    flow.pause(WRITE)
    flow.pause(WRITE)  # repeated: the mock asserts it is not paused twice
    assert transport.read_paused and flow.paused
    assert flow.resume(WRITE) is False and transport.read_paused
    assert flow.resume(WRITE) is False  # not held for that reason any more
    assert flow.resume(PIPELINE) is True and not transport.read_paused and not flow.paused


def test_release_resumes_whatever_held_reading():
    transport = MockTransport()
    flow = FlowControl(transport)  # type: ignore[arg-type]
    flow.release()
    assert not transport.read_paused
    flow.pause(PIPELINE)
    flow.release()
    assert not transport.read_paused and not flow.paused
