"""End to end: the scenario replay and the autotests runner against a live tiny-model server
(the engine fixture behind the real HTTP front-end, on a free port)."""

import asyncio
import sys

import pytest

from solution.benchmarks import scenarios
from solution.benchmarks.checks import check_http, expected_labels
from solution.benchmarks.http_client import HttpTarget
from solution.server.http import protocol as http
from solution.server.http.routes import Routes
from tests.conftest import bound_service, free_port


@pytest.fixture(scope="module")
async def live_url(engine, settings):
    port = free_port()
    state = http.ServerState(
        settings, Routes(bound_service(engine, settings.max_texts_per_request))
    )
    server = await http.serve(state, "127.0.0.1", port)
    yield f"http://127.0.0.1:{port}"
    server.close()


async def test_a_short_replay_passes_every_check(live_url):
    labels = expected_labels()
    texts = ["", "plain text", "ctrl \u0000\u001f and emoji 👍", "https://t.co/x 1BvBMSEYst"]

    def check(status, body):
        return check_http(status, body, labels)

    target = HttpTarget(live_url, texts, check, timeout_s=30)
    plan = scenarios.reference(time_scale=0.01, rate_scale=0.2)  # 5.1 s, at most 40 req/s
    results = await scenarios.replay(target, plan)
    assert [r["scenario"] for r in results] == ["steady", "ramp", "spike", "closed"]
    for r in results:
        assert r["failed"] == 0, r["error_samples"]
        assert r["ok"] > 0
        assert r["ok"] + r["unsent"] == r["planned"] or r["scenario"] == "closed"


async def run_autotests(url, *extra):
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "autotests",
        "--scale",
        "0.01",
        "--rate-scale",
        "0.2",
        "--progress",
        "0",
        "--ready-timeout",
        "5",
        *extra,
        env={"API_HOST": url, "PARTICIPANT_NAME": "e2e", "PATH": ""},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode, out.decode()


async def test_autotests_exit_zero_on_a_good_service(live_url):
    code, out = await run_autotests(live_url)
    assert code == 0, out
    assert "PASS: e2e" in out


async def test_autotests_exit_non_zero_when_answers_fail_the_checks():
    """A server whose answers have the right shape but a label outside its set."""
    port = free_port()
    body = (
        b'{"cardiffnlp":{"score":0.9,"label":"positive"},"ivanlau":{"score":0.9,"label":"English"},'
        b'"svalabs":{"score":0.9,"label":"HAM"},"EIStakovskii":{"score":0.9,"label":"LABEL_0"},'
        b'"jy46604790":{"score":0.9,"label":"LABEL_1"}}'
    )

    async def handler(request):
        return http.Response(200, body)

    from solution.server.config import Settings

    state = http.ServerState(Settings(), handler)
    server = await http.serve(state, "127.0.0.1", port)
    try:
        code, out = await run_autotests(f"http://127.0.0.1:{port}")
    finally:
        server.close()
    assert code == 1, out
    assert "check_label" in out and "FAIL: e2e" in out
