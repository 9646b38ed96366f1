"""A short version of the floods of ``make stress`` (issue 20), against a live server on the tiny
stand-ins: outcomes, not timings (those are ``make stress``'s to print). A light client beside a
gRPC flood over 16 connections (``Classify`` and ``ClassifyBatch``), beside 16 pipelining HTTP
connections, and beside clients that send 256 texts and close: each of its calls succeeds, and
every flood call ends OK or RESOURCE_EXHAUSTED marked Overloaded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import uvloop

from tests.live_server import Server, request, wait_idle
from tests.stress import floods


@pytest.fixture(scope="module")
def server(standins_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(standins_tiny, tmp_path_factory.mktemp("floods") / "server.log")
    try:
        srv.wait_ready()
        yield srv
    finally:
        assert srv.stop() == 0, srv.log()


@pytest.mark.parametrize("batch", [False, True], ids=["Classify", "ClassifyBatch"])
def test_a_light_grpc_client_is_served_beside_a_flood(server, batch):
    flood = uvloop.run(floods.grpc_flood(f"127.0.0.1:{server.grpc_port}", 600, batch=batch))
    assert flood.clean, (flood.statuses, flood.unmarked)
    assert sum(flood.statuses.values()) == 600
    assert flood.light.all_ok, flood.light.statuses
    if batch:  # 600 x 16 texts cannot all fit: the flood is refused, the light client is not
        assert flood.statuses["RESOURCE_EXHAUSTED"] > 0


def test_a_light_http_client_is_served_beside_pipelining_connections(server):
    flood = uvloop.run(floods.http_flood("127.0.0.1", server.port, seconds=2.0))
    assert flood.light.all_ok, flood.light.statuses
    assert set(flood.statuses) <= {200, 503} and flood.statuses[200] > 0


def test_clients_that_send_and_close_leave_a_live_client_served(server):
    live = uvloop.run(floods.gone_clients("127.0.0.1", server.port, seconds=2.0))
    assert live.all_ok, live.statuses
    _, metrics = request(server.port, "GET", "/metrics")
    # under pressure their texts were shed uncomputed, not the live client's
    assert b'classifier_dropped_texts_total{reason="client_gone"}' in metrics
    # what was left of theirs is served (last) and the queue empties
    idle = wait_idle(server.port, timeout_s=120)
    assert idle is not None, "the closed connections' texts never left the queue"
