"""The service as users run it: ``python -m solution.server`` in its own process, real sockets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live_server import Server, free_port, request
from tests.standin_texts import KNOWN, mismatches

HAPPY = "This is how true happiness looks like 👍😜"


@pytest.fixture(scope="module")
def live(standins_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(standins_tiny, tmp_path_factory.mktemp("e2e") / "server.log")
    try:
        srv.wait_ready()
        yield srv
    finally:
        assert srv.stop() == 0


@pytest.fixture(scope="module")
def server(live: Server) -> int:
    return live.port


def test_process_answers_five_results_like_the_readme_curl(server):
    status, body = request(server, "POST", "/process", json.dumps(HAPPY).encode())
    assert status == 200
    result = json.loads(body)
    assert list(result) == ["cardiffnlp", "ivanlau", "svalabs", "EIStakovskii", "jy46604790"]
    assert result["cardiffnlp"]["label"] in {"NEGATIVE", "NEUTRAL", "POSITIVE"}
    assert all(r["score"] > 0 for r in result.values())


@pytest.mark.parametrize("text", ["", "\u0000\u0001\u001f", "🔥" * 300, "https://t.co/x " * 200])
def test_hostile_but_valid_texts_are_answered(server, text):
    status, body = request(server, "POST", "/process", json.dumps(text).encode())
    assert status == 200 and len(json.loads(body)) == 5


def test_bad_input_gets_400_and_the_service_stays_healthy(server):
    for body in (b"not json", b"\xff\xfe", b"{}", b"[1, 2]"):
        status, answer = request(server, "POST", "/process", body)
        assert status == 400 and json.loads(answer)["error"]
    assert request(server, "GET", "/health")[0] == 200
    assert request(server, "POST", "/process", b'"still fine"')[0] == 200


def test_sigterm_under_load_answers_every_accepted_request_and_exits_0(standins_tiny, tmp_path):
    srv = Server(standins_tiny, tmp_path / "server.log", CLS_SHUTDOWN_GRACE_S="20")
    srv.wait_ready()
    port = srv.port
    statuses: list[int] = []
    lock = threading.Lock()

    def client() -> None:
        for i in range(200):
            try:
                status, _ = request(port, "POST", "/process", json.dumps(f"t{i}").encode())
            except OSError:
                return  # refused after the listener closed: not accepted, so not lost
            with lock:
                statuses.append(status)
            if status != 200:
                return

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    exit_code = srv.stop()
    for t in threads:
        t.join(60)
    assert exit_code == 0
    output = srv.log()
    assert statuses.count(200) > 8
    # every request the server took was answered: 200, or 503 "shutting down" after SIGTERM
    assert set(statuses) <= {200, 503}
    assert '"all_answered": true' in output.replace('":true', '": true')


def test_sigterm_answers_every_request_sent_on_kept_alive_connections(standins_tiny, tmp_path):
    """Keep-alive clients sending back to back while SIGTERM drains: none gets EOF or RST
    instead of an answer; each ends on an answer that says Connection: close."""
    import http.client

    srv = Server(standins_tiny, tmp_path / "server.log", CLS_SHUTDOWN_GRACE_S="20")
    srv.wait_ready()
    answered: list[tuple[int, str]] = []
    lost: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        try:
            for i in range(100_000):
                try:
                    conn.request("POST", "/process", json.dumps(f"k{i}").encode())
                    response = conn.getresponse()
                    response.read()
                except OSError as exc:
                    with lock:
                        lost.append(repr(exc))
                    return
                closing = (response.getheader("connection") or "") == "close"
                with lock:
                    answered.append((response.status, "close" if closing else "keep-alive"))
                if closing:
                    return
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(answered) < 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    exit_code = srv.stop()
    for t in threads:
        t.join(60)
    assert exit_code == 0
    assert lost == []
    assert {status for status, _ in answered} <= {200, 503}
    assert [c for _, c in answered].count("close") == 8  # each connection ended by the server


def test_unreachable_hub_fails_clearly_and_names_make_demo(tmp_path):
    config = tmp_path / "models.json"
    config.write_text(json.dumps({"models": [{"key": "m", "source": "no-such-org/no-model"}]}))
    proc = subprocess.run(
        [sys.executable, "-m", "solution.server", "--model-config", str(config)],
        env={
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "CLS_HTTP_PORT": str(free_port()),
            "CLS_GRPC_PORT": str(free_port()),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "make demo" in proc.stderr
    assert "no-such-org/no-model" in proc.stderr


def test_metrics_count_the_requests_served(live):
    from solution.client import GrpcClient

    server = live.port
    request(server, "POST", "/process", b'"count me"')
    request(server, "GET", "/no-such-route")
    with GrpcClient(f"127.0.0.1:{live.grpc_port}", timeout=30) as client:
        assert len(client.classify("count me over grpc")) == 5
    status, body = request(server, "GET", "/metrics")
    text = body.decode()
    assert status == 200
    assert 'classifier_requests_total{protocol="http",route="/process",status="200"}' in text
    assert 'route="other",status="404"' in text  # unknown paths share one label value
    assert 'classifier_requests_total{protocol="grpc",route="Classify",status="OK"}' in text
    assert "classifier_batch_texts_bucket" in text


def test_known_texts_get_their_rules_labels_over_http_and_grpc(live):
    """The trained stand-ins answer by ``standins/rules.py``: a French compliment is French and
    positive, a crypto giveaway is spam, "BREAKING: sources say" is fake (LABEL_0)."""
    from solution.client import GrpcClient, to_json

    texts = list(KNOWN)
    status, body = request(live.port, "POST", "/process", json.dumps(texts).encode())
    assert status == 200
    over_http = json.loads(body)
    with GrpcClient(f"127.0.0.1:{live.grpc_port}", timeout=30) as client:
        over_grpc = [to_json(r) for r in client.classify_batch(texts)]
    for text, http_answer, grpc_answer in zip(texts, over_http, over_grpc, strict=True):
        labels = {key: r["label"] for key, r in http_answer.items()}
        assert not mismatches(text, labels), (text, mismatches(text, labels))
        assert {key: r["label"] for key, r in grpc_answer.items()} == labels, text
