"""``python -m solution.client`` against ``python -m solution.server`` run as a subprocess with
both front-ends (as deployed), and against a closed port."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

MAX_TEXTS = 4  # the subprocess server's max_texts_per_request: a refusal is easy to provoke
ENV = {**os.environ, "PYTHONUTF8": "1", "HF_HUB_OFFLINE": "1"}


@dataclass
class Server:
    http: str  # host:port
    grpc: str
    log: Path


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def serving(target: str) -> bool:
    # a private connection, closed with the channel (not left in grpc's shared pool, where the
    # server's GOAWAY at shutdown would be logged)
    with grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
        check = health_pb2_grpc.HealthStub(channel).Check
        try:
            answer = check(health_pb2.HealthCheckRequest(service=""), timeout=1)
        except grpc.RpcError:
            return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


@pytest.fixture(scope="module")
def server(standins_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    http_port, grpc_port = free_ports(2)
    log = tmp_path_factory.mktemp("server") / "server.log"
    env = {
        **ENV,
        "CLS_MODELS_DIR": str(standins_tiny),
        "CLS_DEVICE": "cpu",
        "CLS_HOST": "127.0.0.1",
        "CLS_HTTP_PORT": str(http_port),
        "CLS_GRPC_PORT": str(grpc_port),
        "CLS_MAX_TEXTS_PER_REQUEST": str(MAX_TEXTS),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "solution.server"], env=env, stdout=out, stderr=out
        )
    s = Server(f"127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", log)
    try:
        deadline = time.monotonic() + 90
        while not serving(s.grpc):
            assert proc.poll() is None, f"the server exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"the server never served:\n{log.read_text()}"
            time.sleep(0.1)
        yield s
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0, f"unclean shutdown:\n{log.read_text()}"


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "solution.client", *args],
        input=stdin,
        capture_output=True,
        encoding="utf-8",
        env=ENV,
        timeout=60,
    )


def process(server: Server, body: object) -> bytes:
    answer = httpx.post(f"http://{server.http}/process", json=body, timeout=10)
    assert answer.status_code == 200
    return answer.content


def test_one_text_prints_what_http_process_answers(server: Server):
    text = "I love this 👍 https://t.co/x"
    for args in (["--target", server.http], ["--grpc", "--target", server.grpc]):
        run = cli(*args, "--timeout", "10", text)
        assert run.returncode == 0, run.stderr
        assert run.stdout.encode() == process(server, text) + b"\n"  # byte for byte


def test_several_texts_print_an_array_in_order(server: Server):
    texts = ["first", "", "third 😜"]
    expected = process(server, texts) + b"\n"
    for args in (["--target", server.http], ["--grpc", "--target", server.grpc]):
        run = cli(*args, *texts)
        assert run.returncode == 0, run.stderr
        assert run.stdout.encode() == expected


def test_without_texts_reads_lines_from_stdin(server: Server):
    expected = json.loads(process(server, ["one", "", "three"]))
    for args in (["--target", server.http], ["--grpc", "--target", server.grpc]):
        run = cli(*args, stdin="one\n\nthree\n")
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout) == expected


def test_a_refusal_exits_1_with_status_and_message(server: Server):
    lines = "".join(f"text {i}\n" for i in range(MAX_TEXTS + 1))
    for args, status in (
        (["--target", server.http], "400"),
        (["--grpc", "--target", server.grpc], "INVALID_ARGUMENT"),
    ):
        run = cli(*args, stdin=lines)
        assert run.returncode == 1 and run.stdout == ""
        assert run.stderr == (
            f"error: server refused the request ({status}): "
            f"at most {MAX_TEXTS} texts per request, got {MAX_TEXTS + 1}\n"
        )


def test_a_closed_port_exits_1_with_one_line():
    (port,) = free_ports(1)
    for args in (["--target", f"127.0.0.1:{port}"], ["--grpc", "--target", f"127.0.0.1:{port}"]):
        run = cli(*args, "hello")
        assert run.returncode == 1 and run.stdout == ""
        assert run.stderr.startswith("error: cannot reach the ")
        assert run.stderr.count("\n") == 1 and "Connection refused" in run.stderr


def test_no_texts_at_all_is_a_usage_error():
    run = cli("--target", "127.0.0.1:9", stdin="")
    assert run.returncode == 2 and "no texts" in run.stderr


# ---- per-request options and --list-models (issue 14) -----------------------------------------

PROTOCOLS = ("http", "grpc")
FLAGS = [  # CLI flags -> the object body's fields they stand for
    (["--models", "jy46604790,cardiffnlp"], {"models": ["jy46604790", "cardiffnlp"]}),
    (["--top-k", "2"], {"top_k": 2}),
    (["--all-labels", "--raw-scores"], {"top_k": None, "raw_scores": True}),
    (["--no-truncate", "--models", "svalabs"], {"truncate": False, "models": ["svalabs"]}),
]


def targets(server: Server) -> dict[str, list[str]]:
    return {"http": ["--target", server.http], "grpc": ["--grpc", "--target", server.grpc]}


def test_each_option_flag_prints_what_http_process_answers_to_its_field(server: Server):
    text = "Free crypto giveaway! Click here 👍"
    for flags, fields in FLAGS:
        expected = process(server, {"inputs": text, **fields}) + b"\n"
        for protocol in PROTOCOLS:
            run = cli(*targets(server)[protocol], *flags, text)
            assert run.returncode == 0, run.stderr
            assert run.stdout.encode() == expected, (protocol, flags)  # byte for byte
    texts = ["first", "Ce film est magnifique"]
    expected = process(server, {"inputs": texts, "top_k": 3, "models": ["ivanlau"]}) + b"\n"
    for protocol in PROTOCOLS:
        run = cli(*targets(server)[protocol], "--top-k", "3", "--models", "ivanlau", *texts)
        assert run.returncode == 0 and run.stdout.encode() == expected, run.stderr


def test_list_models_prints_what_get_models_answers(server: Server):
    answer = httpx.get(f"http://{server.http}/models", timeout=10)
    assert answer.status_code == 200
    keys = [m["key"] for m in answer.json()["models"]]
    assert keys == ["cardiffnlp", "ivanlau", "svalabs", "EIStakovskii", "jy46604790"]
    for protocol in PROTOCOLS:
        run = cli(*targets(server)[protocol], "--list-models")
        assert run.returncode == 0, run.stderr
        assert run.stdout.encode() == answer.content + b"\n", protocol


def test_the_servers_refusals_of_options_exit_1_with_its_message(server: Server):
    for protocol, status in zip(PROTOCOLS, ("400", "INVALID_ARGUMENT"), strict=True):
        run = cli(*targets(server)[protocol], "--models", "cardiffnlp,nope", "x")
        assert run.returncode == 1 and run.stdout == ""
        assert run.stderr == (
            f"error: server refused the request ({status}): models: unknown model 'nope'; the "
            "models are cardiffnlp, ivanlau, svalabs, EIStakovskii, jy46604790\n"
        )
        run = cli(*targets(server)[protocol], "--no-truncate", "word " * 600)
        assert run.returncode == 1 and run.stdout == ""
        count = re.fullmatch(
            rf"error: server refused the request \({status}\): the text has (\d+) tokens; .*\n",
            run.stderr,
        )
        assert count and int(count[1]) > 512, run.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--top-k", "0", "x"], "top_k: expected a count from 1 up"),  # gRPC would read "every"
        (["--top-k", "two", "x"], "argument --top-k: invalid int value: 'two'"),
        (["--top-k", "2", "--all-labels", "x"], "not allowed with argument --top-k"),
        (["--list-models", "x"], "--list-models takes no texts"),
        (["--list-models", "--raw-scores"], "--list-models takes no texts"),
    ],
)
def test_option_usage_errors_exit_2_before_any_request(args: list[str], message: str):
    (port,) = free_ports(1)  # nothing listens: a request would exit 1 instead
    for protocol in (
        ["--target", f"127.0.0.1:{port}"],
        ["--grpc", "--target", f"127.0.0.1:{port}"],
    ):
        run = cli(*protocol, *args)
        assert run.returncode == 2 and run.stdout == ""
        assert message in run.stderr, run.stderr


def test_help_documents_every_option():
    run = cli("--help")
    assert run.returncode == 0
    for flag in (
        "--models",
        "--top-k",
        "--all-labels",
        "--raw-scores",
        "--no-truncate",
        "--list-models",
    ):
        assert flag in run.stdout
