"""A ``python -m solution.server`` process for tests and the stress run, on free ports."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A ``python -m solution.server`` process; its log goes to a file (a pipe could fill up
    and block the server)."""

    def __init__(self, standins: Path, log: Path, **env: str):
        self.port = free_port()
        self.grpc_port = free_port()
        self.log_path = log
        environ = {
            **os.environ,
            "CLS_MODELS_DIR": str(standins),
            "CLS_HOST": "127.0.0.1",
            "CLS_HTTP_PORT": str(self.port),
            "CLS_GRPC_PORT": str(self.grpc_port),
            "HF_HUB_OFFLINE": "1",
            **env,
        }
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "solution.server"],
                env=environ,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log()
            try:
                if request(self.port, "GET", "/ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"server not ready:\n{self.log()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def rss_kib(pid: int) -> int:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


IDLE_GAUGES = ("classifier_queue_texts", "classifier_computing_texts")


def wait_idle(port: int, timeout_s: float = 60.0) -> float | None:
    """Seconds until the server's queue and compute are empty (``/metrics``); None: not within
    ``timeout_s``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        lines = request(port, "GET", "/metrics")[1].decode().splitlines()
        if all(f"{name} 0.0" in lines for name in IDLE_GAUGES):
            return round(time.monotonic() - started, 1)
        time.sleep(0.2)
    return None
