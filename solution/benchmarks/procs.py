"""Starting and stopping the servers under test, one at a time, each its own process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get_status(port: int, path: str, host: str = "127.0.0.1", timeout_s: float = 2.0) -> int:
    """Status of ``GET path`` on host:port, or 0 when nothing answers."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n".encode())
            head = s.recv(64)
    except OSError:
        return 0
    parts = head.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


class Server:
    """``with Server(...) as s:`` starts the command, waits for ``GET ready_path`` to answer 200,
    and on exit sends SIGTERM (then SIGKILL after ``stop_s``). Output goes to ``log``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        port: int,
        log: Path,
        env: dict[str, str] | None = None,
        ready_path: str = "/ready",
        start_s: float = 300.0,
        stop_s: float = 30.0,
    ):
        self.name = name
        self.argv = list(argv)
        self.port = port
        self.log = log
        self.env = {**os.environ, **(env or {})}
        self.ready_path = ready_path
        self.start_s = start_s
        self.stop_s = stop_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_in_s = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = self.log.open("wb")
        start = time.perf_counter()
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        while http_get_status(self.port, self.ready_path) != 200:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited during start-up:\n{self.tail()}")
            if time.perf_counter() - start > self.start_s:
                self.stop()
                raise RuntimeError(f"{self.name} not ready within {self.start_s}s:\n{self.tail()}")
            time.sleep(0.25)
        self.started_in_s = time.perf_counter() - start
        print(f"  {self.name} ready in {self.started_in_s:.1f}s", file=sys.stderr, flush=True)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(self.stop_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
