"""``make image-test``: the built image, started as a user starts it, against real clients.

    python -m scripts.image_test --image localhost/tweet-classifier:0.1.0-cpu --standins DIR

Run from the repository root after ``scripts/image.sh IMAGE`` (which writes the containers.conf
this uses). Every container is started with podman and removed by its id. In order:

1. without models, and with models it cannot read: the container exits 1 at once, one line;
2. with the stand-ins mounted read-only, a read-only root filesystem and published ports: ready
   within the timeout; the HEALTHCHECK passes; PID 1 is the server, running as uid 10001;
3. gRPC through the generated client (``solution.client.GrpcClient``);
4. the autotests runner (the reference client's four scenarios, time-scaled) against the port;
5. SIGTERM under HTTP keep-alive load: every request sent is answered (200, or 503 once draining),
   none gets a reset or EOF instead, and the container exits 0.
Exit 0 when all pass; one line per step.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "image"
KEYS = ["cardiffnlp", "ivanlau", "svalabs", "EIStakovskii", "jy46604790"]


class Failed(Exception):
    pass


def podman(*args: str, timeout: float = 120, check: bool = True) -> str:
    done = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise Failed(f"podman {' '.join(args[:2])}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


@contextmanager
def container(image: str, *options: str) -> Iterator[str]:
    """A detached container; removed by its id afterwards, whatever happened."""
    cid = podman("run", "--detach", *options, image)
    try:
        yield cid
    finally:
        podman("rm", "--force", "--time", "0", cid, check=False)


def wait_exit(cid: str, timeout: float) -> int:
    return int(podman("wait", cid, timeout=timeout))


def stage_models(standins: Path, dest: Path) -> None:
    """A copy of the stand-ins that any uid can read (their builder writes some files 0600, and
    the image's user is not their owner): what a models volume must look like."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(standins, dest, ignore=shutil.ignore_patterns(".built"))
    for path in [dest, *dest.rglob("*")]:
        extra = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
        if path.is_dir():
            extra |= stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
        path.chmod(path.stat().st_mode | extra)


def http_get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def check_refuses(image: str, name: str, *options: str) -> str:
    """The container must stop by itself, soon, exit 1, with one line on stderr."""
    started = time.monotonic()
    with container(image, *options) as cid:
        code = wait_exit(cid, 60)
        logs = podman_logs(cid)
        lines = [line for line in logs.splitlines() if line.strip()]
    took = time.monotonic() - started
    if code != 1 or len(lines) != 1 or "models not usable" not in lines[0]:
        raise Failed(f"{name}: exit {code}, expected 1 and one line; output:\n{logs}")
    return f"{name}: exit 1 in {took:.1f} s: {lines[0][:150]}"


def podman_logs(cid: str) -> str:
    done = subprocess.run(["podman", "logs", cid], capture_output=True, text=True, timeout=60)
    return done.stdout + done.stderr


def wait_ready(cid: str, port: int, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if podman("inspect", "--format", "{{.State.Running}}", cid) != "true":
            raise Failed(f"the container stopped before ready:\n{podman_logs(cid)[-3000:]}")
        try:
            if http_get(port, "/ready")[0] == 200:
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.5)
    raise Failed(f"/ready not 200 within {timeout} s:\n{podman_logs(cid)[-3000:]}")


def check_inside(cid: str) -> str:
    health = subprocess.run(
        ["podman", "healthcheck", "run", cid], capture_output=True, text=True, timeout=60
    )
    if health.returncode != 0:
        raise Failed(f"HEALTHCHECK failed: {health.stdout}{health.stderr}")
    pid1 = podman("exec", cid, "cat", "/proc/1/cmdline").replace("\0", " ").strip()
    uid = podman("exec", cid, "id", "-u")
    if "solution.server" not in pid1 or "fetch_models" in pid1 or uid != "10001":
        raise Failed(f"PID 1 is {pid1!r}, uid {uid}: expected the server as 10001")
    return f"inside: HEALTHCHECK healthy, PID 1 = {pid1!r}, uid {uid}"


def check_grpc(port: int) -> str:
    from solution.client import GrpcClient

    with GrpcClient(f"127.0.0.1:{port}", timeout=30) as client:
        one = client.classify("This is how true happiness looks like 👍😜")
        batch = client.classify_batch(["", "bitcoin 1BoatSLRHtKNngkdXEeobR76b53LETtpyT", "hi"])
        models = client.list_models()
    if list(one) != KEYS or len(batch) != 3 or any(list(r) != KEYS for r in batch):
        raise Failed(f"gRPC answers lack the five keys: {one}, {batch}")
    if [m.key for m in models] != KEYS:
        raise Failed(f"gRPC ListModels: {[m.key for m in models]}")
    return f"gRPC: Classify, ClassifyBatch (3 texts), ListModels answered; {one['cardiffnlp']}"


def run_autotests(port: int, scale: float, rate_scale: float) -> str:
    out = CACHE / "autotests.json"
    done = subprocess.run(
        [
            sys.executable, "-m", "autotests", "--api-host", f"http://127.0.0.1:{port}",
            "--scale", str(scale), "--rate-scale", str(rate_scale), "--ready-timeout", "30",
            "--progress", "1000", "--json", str(out),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=600 * scale + 300,
    )  # fmt: skip
    summary = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0:
        raise Failed("autotests failed:\n" + done.stdout[-4000:] + done.stderr[-2000:])
    scenarios = "\n".join(
        "    " + line
        for line in summary
        if line.startswith(("  ", "steady", "ramp", "spike", "closed"))
    )
    return f"autotests (scale {scale}, rate scale {rate_scale}): {summary[-1]}\n{scenarios}"


def drain(cid: str, port: int, clients: int = 8) -> str:
    """Keep-alive clients sending back to back; SIGTERM once they are busy. A request that gets
    no answer (reset, EOF) after it was sent on an open connection is lost."""
    answered: list[int] = []
    closed_by_server: list[bool] = []
    lost: list[str] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            for i in range(1_000_000):
                try:
                    conn.request("POST", "/process", json.dumps(f"drain {n} {i}").encode())
                    response = conn.getresponse()
                    response.read()
                except OSError as exc:
                    with lock:
                        lost.append(f"client {n}, request {i}: {exc!r}")
                    return
                closing = (response.getheader("connection") or "").lower() == "close"
                with lock:
                    answered.append(response.status)
                    if closing:
                        closed_by_server.append(True)
                if closing:
                    return
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(answered) < 200 and time.monotonic() < deadline and not lost:
        time.sleep(0.05)
    before = len(answered)
    signalled = time.monotonic()
    podman("kill", "--signal", "TERM", cid)
    code = wait_exit(cid, 90)
    took = time.monotonic() - signalled
    for t in threads:
        t.join(30)
    logs = podman_logs(cid)
    statuses = {s: answered.count(s) for s in sorted(set(answered))}
    problems = []
    if code != 0:
        problems.append(f"exit code {code}")
    if lost:
        problems.append(f"{len(lost)} sent requests got no answer, e.g. {lost[0]}")
    if not set(statuses) <= {200, 503} or before == 0:
        problems.append(f"statuses {statuses}")
    if len(closed_by_server) != clients:
        problems.append(f"{len(closed_by_server)} of {clients} connections closed by the server")
    if '"all_answered": true' not in logs.replace('":true', '": true'):
        problems.append("the log lacks all_answered: true")
    if problems:
        raise Failed("drain: " + "; ".join(problems) + "\n" + logs[-3000:])
    return (
        f"drain: SIGTERM after {before} answers under {clients} keep-alive clients; "
        f"{len(answered) - before} more answered while draining, statuses {statuses}, 0 lost; "
        f"each connection closed by the server; exit 0 after {took:.1f} s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.image_test", description=__doc__)
    parser.add_argument("--image", required=True)
    parser.add_argument("--standins", type=Path, required=True, help="the tiny stand-ins")
    parser.add_argument("--http-port", type=int, default=18080)
    parser.add_argument("--grpc-port", type=int, default=15051)
    parser.add_argument("--scale", type=float, default=0.1, help="autotests time scale")
    parser.add_argument("--rate-scale", type=float, default=1.0, help="autotests rate scale")
    parser.add_argument("--ready-timeout", type=float, default=180)
    args = parser.parse_args(argv)
    conf = CACHE / "containers.conf"
    if not conf.is_file():
        print(f"image-test: {conf} is missing: run scripts/image.sh first (make image)")
        return 3
    os.environ["CONTAINERS_CONF"] = str(conf)
    if not (args.standins / KEYS[0] / "config.json").is_file():
        print(f"image-test: no stand-ins in {args.standins}: make {args.standins}/.built")
        return 3
    models = CACHE / "models"
    stage_models(args.standins, models)
    unreadable = CACHE / "models-unreadable"
    stage_models(args.standins, unreadable)
    (unreadable / KEYS[1] / "config.json").chmod(0o600)
    steps = 0
    try:
        print(check_refuses(args.image, "no models"), flush=True)
        print(
            check_refuses(args.image, "unreadable models", "--volume", f"{unreadable}:/models:ro"),
            flush=True,
        )
        steps += 2
        run = [
            "--read-only", "--tmpfs", "/tmp", "--env", "HOME=/tmp",
            "--env", "CLS_SHUTDOWN_GRACE_S=20", "--env", "HF_HUB_OFFLINE=1",
            "--volume", f"{models}:/models:ro",
            "--publish", f"127.0.0.1:{args.http_port}:8000",
            "--publish", f"127.0.0.1:{args.grpc_port}:50051",
        ]  # fmt: skip
        with container(args.image, *run) as cid:
            took = wait_ready(cid, args.http_port, args.ready_timeout)
            print(f"started: {cid[:12]}, ready {took:.1f} s after the start", flush=True)
            print(check_inside(cid), flush=True)
            print(check_grpc(args.grpc_port), flush=True)
            print(run_autotests(args.http_port, args.scale, args.rate_scale), flush=True)
            print(drain(cid, args.http_port), flush=True)
            steps += 5
    except (Failed, subprocess.TimeoutExpired) as exc:
        print(f"image-test FAILED: {exc}")
        return 1
    print(f"image-test PASS: {steps} checks against {args.image}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
