"""Start-up that fails clearly, as a new user meets it: ``python -m solution.server`` with bad
values and broken model folders exits non-zero with one line on stderr naming what to fix, and
no traceback. (``tests/server/test_config.py`` and ``test_models.py`` cover each check directly.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.live_server import free_port
from tests.model_kinds import build_kinds

# A bound for a hung start, not a speed target: a failing start exits as soon as it knows.
EXIT_BOUND_S = 120


def start(env: dict[str, str], *, models_dir: Path | None = None) -> tuple[int, str]:
    """Run the server to its exit; returns the exit code and the plain (non-JSON) stderr lines."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CLS_")}
    environ.update(
        {
            "CLS_HOST": "127.0.0.1",
            "CLS_HTTP_PORT": str(free_port()),
            "CLS_GRPC_PORT": str(free_port()),
            "HF_HUB_OFFLINE": "1",
            **({"CLS_MODELS_DIR": str(models_dir)} if models_dir else {}),
            **env,
        }
    )
    proc = subprocess.run(
        [sys.executable, "-m", "solution.server"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=EXIT_BOUND_S,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    plain = [line for line in proc.stderr.splitlines() if line and not line.startswith("{")]
    return proc.returncode, "\n".join(plain)


@pytest.mark.parametrize(
    "env, names",
    [
        ({"CLS_HEADER_TIMEOUT_S": "nan"}, "CLS_HEADER_TIMEOUT_S=nan"),
        ({"CLS_KEEP_ALIVE_TIMEOUT_S": "nan"}, "CLS_KEEP_ALIVE_TIMEOUT_S=nan"),
        ({"CLS_SHUTDOWN_GRACE_S": "nan"}, "CLS_SHUTDOWN_GRACE_S=nan"),
        ({"CLS_MAX_WAIT_MS": "inf"}, "CLS_MAX_WAIT_MS=inf"),
        ({"CLS_QUEUE_TEXTS": "99999999999"}, "CLS_QUEUE_TEXTS=99999999999"),
        ({"CLS_MAX_BATCH_TXTS": "5"}, "did you mean CLS_MAX_BATCH_TEXTS?"),
        ({"CLS_LOG_LEVEL": "LOUD"}, "CLS_LOG_LEVEL='LOUD'"),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_2(env, names):
    code, stderr = start(env)
    assert code == 2
    assert stderr.startswith("invalid configuration: ") and "\n" not in stderr
    assert names in stderr


@pytest.fixture
def broken(standins_tiny: Path, tmp_path: Path) -> Path:
    """A private copy of the stand-ins, to break."""
    shutil.copytree(standins_tiny, tmp_path / "models")
    return tmp_path / "models"


def test_a_truncated_weights_file(broken):
    weights = broken / "svalabs" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    code, stderr = start({}, models_dir=broken)
    assert code == 1 and "\n" not in stderr
    assert stderr.startswith("start-up failed: cannot load model 'svalabs'")
    assert str(broken / "svalabs") in stderr and "make demo" in stderr


def test_a_deleted_tokenizer_json(broken):
    (broken / "jy46604790" / "tokenizer.json").unlink()
    code, stderr = start({}, models_dir=broken)
    assert code == 1 and "\n" not in stderr
    assert f"{broken / 'jy46604790'} has no tokenizer.json" in stderr


def test_a_models_dir_that_does_not_exist(tmp_path):
    code, stderr = start({}, models_dir=tmp_path / "absent")
    assert code == 1 and "\n" not in stderr
    assert f"CLS_MODELS_DIR='{tmp_path / 'absent'}' is not a folder" in stderr


def test_a_missing_model_folder_is_not_replaced_by_the_hub_id(broken):
    shutil.rmtree(broken / "ivanlau")
    code, stderr = start({"HF_HUB_OFFLINE": "0"}, models_dir=broken)
    assert code == 1 and "\n" not in stderr
    assert "no folder for 'ivanlau'" in stderr and str(broken / "ivanlau") in stderr


class DownHub(BaseHTTPRequestHandler):
    """A hub that answers 503 to everything, as a proxy without upstream network does; the hub
    library retries 503s with backoff (about 20 s per file), so what it asked is countable."""

    asked: list[str]

    def answer(self) -> None:
        self.asked.append(f"{self.command} {self.path}")
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def down_hub() -> Iterator[tuple[str, list[str]]]:
    asked: list[str] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Hub", (DownHub,), {"asked": asked}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", asked
    server.shutdown()
    server.server_close()


def test_make_run_without_network_asks_the_hub_once_and_names_make_demo(down_hub, tmp_path):
    endpoint, asked = down_hub
    code, stderr = start(
        {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "hf")}
    )
    assert code == 1 and "\n" not in stderr
    assert f"the hub ({endpoint}) is unreachable" in stderr
    assert "cardiffnlp/twitter-xlm-roberta-base-sentiment" in stderr and "make demo" in stderr
    assert asked.count("HEAD /") == 1  # the one probe
    assert not [a for a in asked if "/resolve/" in a]  # no model file asked (and retried)


def test_a_model_that_cannot_be_served_as_configured(standins_tiny: Path, tmp_path: Path):
    build_kinds(standins_tiny, tmp_path / "kinds")
    config = tmp_path / "models.json"
    config.write_text('{"models": [{"key": "score", "source": "x", "function": "softmax"}]}')
    code, stderr = start({"CLS_MODEL_CONFIG": str(config)}, models_dir=tmp_path / "kinds")
    assert code == 1 and "\n" not in stderr
    assert stderr.startswith("start-up failed: cannot serve model 'score'")
    assert "a softmax over one output is always 1" in stderr
