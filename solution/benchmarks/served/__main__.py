"""``python -m solution.benchmarks.served``: the command line and the run's order (see the
package's docstring). Writes ``served.json``/``.md`` (``served-cpu-smoke`` without a GPU)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..checks import expected_labels
from ..load_texts import LOAD_TEXTS, load_texts
from ..procs import Server, free_port
from . import k6
from .loads import Budget, Inputs, Plan, grpc_batches, http_closed, http_spike
from .report import Record


def ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--standins", type=Path, default=Path(".cache/standins-tiny"))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--limit-json", type=Path, help="gpu_check's JSON: the graph limit")
    p.add_argument("--users", default="1,16,64,128,256", help="HTTP closed-loop users")
    p.add_argument("--peer-users", default=None, help="the peer's users (default: --users)")
    p.add_argument("--seconds", type=float, default=6.0, help="measured per load level")
    p.add_argument("--warmup-s", type=float, default=2.0)
    p.add_argument("--grpc-callers", default="4,16,32", help="concurrent ClassifyBatch callers")
    p.add_argument("--grpc-batch", type=int, default=64)
    p.add_argument("--spike", default="10,30,200", help="start,middle,peak req/s")
    p.add_argument("--spike-stage-s", type=float, default=4.0)
    p.add_argument("--spike-hold-s", type=float, default=8.0)
    p.add_argument("--spike-max-vus", type=int, default=50)
    p.add_argument("--budget-s", type=float, default=200.0, help="no load starts past this")
    p.add_argument("--start-s", type=float, default=150.0, help="a server's start-up limit")
    p.add_argument("--texts", type=int, default=LOAD_TEXTS)
    p.add_argument("--k6", help="the k6 binary (default: $K6, the venv's, the PATH's)")
    p.add_argument("--no-peer", action="store_true", help="leave the winner-style peer out")
    p.add_argument(
        "--host-floor",
        default="1,256",
        help="users of the host floor's closed loops (host_floor.py; empty: leave it out)",
    )
    p.add_argument("--allow-cpu", action="store_true", help="smoke-test this script on cpu")
    return p.parse_args(argv)


def plan_of(args: argparse.Namespace) -> Plan:
    start, mid, peak = (float(x) for x in args.spike.split(","))
    return Plan(
        users=ints(args.users),
        seconds=args.seconds,
        warmup_s=args.warmup_s,
        grpc_callers=ints(args.grpc_callers),
        grpc_batch=args.grpc_batch,
        spike_rates=(start, mid, peak),
        spike_stage_s=args.spike_stage_s,
        spike_hold_s=args.spike_hold_s,
        spike_max_vus=args.spike_max_vus,
        budget_s=args.budget_s,
    )


def describe(args: argparse.Namespace, cuda: bool, k6_path: str | None) -> dict[str, Any]:
    return {
        "command": [sys.executable, "-m", "solution.benchmarks.served", *sys.argv[1:]],
        "device": torch.cuda.get_device_name(0) if cuda else "cpu (smoke test, not a GPU result)",
        "smoke_test": not cuda,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "k6": k6.version(k6_path) if k6_path else None,
        "server_env": server_env(Path("MODELS"), cuda),
    }


def server_env(models: Path, cuda: bool) -> dict[str, str]:
    return {
        "CLS_MODELS_DIR": str(models),
        "CLS_DEVICE": "cuda" if cuda else "cpu",
        "CLS_DTYPE": "fp16" if cuda else "fp32",
        "CLS_CUDA_GRAPHS": "auto",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }


def server_argv(module: str, http_port: int, grpc_port: int) -> list[str]:
    """The command that starts the service (or ``host_floor``, which takes the same options)."""
    return [
        sys.executable,
        "-m",
        module,
        "--http-port",
        str(http_port),
        "--grpc-port",
        str(grpc_port),
    ]


def peer_missing() -> str | None:
    """The peer serves through uvicorn and orjson; the GPU machine has them only when carried."""
    absent = [m for m in ("uvicorn", "orjson") if importlib.util.find_spec(m) is None]
    return f"the winner-style peer needs {', '.join(absent)}: not installed" if absent else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available()
    k6_path = k6.find_k6(args.k6)
    smoke = not cuda
    record = Record(
        args.out, "served-cpu-smoke" if smoke else "served", describe(args, cuda, k6_path)
    )
    missing = ([] if cuda or args.allow_cpu else ["a CUDA device"]) + ([] if k6_path else ["k6"])
    if missing:
        record.doc["missing"] = missing
        record.check("inputs present", False, "missing: " + ", ".join(missing))
        record.save()
        print("served cannot run; missing: " + ", ".join(missing), file=sys.stderr)
        return 2
    assert k6_path is not None
    if args.limit_json and args.limit_json.is_file():
        record.doc["limit"] = json.loads(args.limit_json.read_text()).get("steps", {}).get("limit")
    work = Path(tempfile.mkdtemp(prefix="served-"))
    models = args.standins
    if cuda:
        with record.step("base_models") as result:
            from .models import write_base_models

            models = write_base_models(
                args.standins, work / "models", torch.device("cuda"), torch.float16
            )
            result["folder"] = str(models)
    texts = load_texts(args.texts)
    labels = expected_labels(models_dir=models)
    (work / "texts.json").write_text(json.dumps(texts))
    (work / "labels.json").write_text(json.dumps({k: sorted(v) for k, v in labels.items()}))
    inputs = Inputs(
        k6_path, work / "texts.json", work / "labels.json", texts, labels, args.out / "served.log"
    )
    inputs.log.write_text("")
    plan = plan_of(args)
    record.doc["plan"] = {**plan.__dict__, "texts": len(texts)}
    budget = Budget(plan.budget_s)
    serve(record, plan, inputs, models, cuda, budget, args.start_s)
    reason = "--no-peer" if args.no_peer else peer_missing()
    if reason:
        record.skip("peer", reason)
    else:
        peer_users = ints(args.peer_users) if args.peer_users else plan.users
        run_peer(record, plan, inputs, models, cuda, budget, args.start_s, peer_users)
    floor_users = ints(args.host_floor)
    if floor_users:
        host_floor(record, plan, inputs, args.standins, cuda, budget, args.start_s, floor_users)
    else:
        record.skip("host_floor", "--host-floor ''")
    record.finish()
    print((args.out / f"{record.name}.md").read_text())
    return 0 if record.passed() else 1


def serve(
    record: Record,
    plan: Plan,
    inputs: Inputs,
    models: Path,
    cuda: bool,
    budget: Budget,
    start_s: float,
) -> None:
    http_port, grpc_port = free_port(), free_port()
    argv = server_argv("solution.server", http_port, grpc_port)
    env = server_env(models, cuda)
    log = inputs.log.with_name("served-server.log")
    with record.step("service") as result:
        server = Server("service", argv, http_port, log, env=env, start_s=start_s, stop_s=40.0)
        with server:
            result["started_in_s"] = round(server.started_in_s, 1)
            base = server.url
            closed_loops(record, result, base, plan.users, plan, inputs, budget, metrics=True)
            result["grpc"] = [
                grpc_batches(base, f"127.0.0.1:{grpc_port}", c, plan, inputs)
                for c in plan.grpc_callers
                if budget.left()
            ]
            record.save()
            if budget.left():
                result["spike"] = http_spike(base, plan, inputs, metrics=True)
        assert server.proc is not None
        result["exit_code"] = server.proc.returncode  # after SIGTERM: a clean drain exits 0
        result["server_log_tail"] = server.tail(15)
    append_log(inputs.log, log)


def run_peer(
    record: Record,
    plan: Plan,
    inputs: Inputs,
    models: Path,
    cuda: bool,
    budget: Budget,
    start_s: float,
    users: tuple[int, ...],
) -> None:
    if not budget.left():
        record.skip("peer", f"run past its {plan.budget_s:.0f} s budget")
        return
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "solution.benchmarks.peers.winner",
        "--models-dir",
        str(models),
        "--port",
        str(port),
        "--dtype",
        "fp16" if cuda else "fp32",
        "--device",
        "cuda" if cuda else "cpu",
    ]
    log = inputs.log.with_name("served-peer.log")
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    peer = Server("winner-style", argv, port, log, env=env, start_s=start_s)
    with record.step("peer") as result, peer:
        result["started_in_s"] = round(peer.started_in_s, 1)
        closed_loops(record, result, peer.url, users, plan, inputs, budget, metrics=False)
    append_log(inputs.log, log)


def host_floor(
    record: Record,
    plan: Plan,
    inputs: Inputs,
    standins: Path,
    cuda: bool,
    budget: Budget,
    start_s: float,
    users: tuple[int, ...],
) -> None:
    """The server with its forwards replaced by zeros (``host_floor.py``) under the same HTTP
    load, after a ``GET /health`` loop for the client's and the HTTP layer's own round trip. It
    serves the stand-ins as they are (the same tokenizers as the served models; no forward runs,
    so their size does not matter) with graphs off: a start of seconds, not a capture."""
    needs_s = 10.0 + (1 + len(users)) * (plan.warmup_s + plan.seconds)  # a start, its loads
    if budget.elapsed() + needs_s > plan.budget_s:
        record.skip(
            "host_floor", f"its ~{needs_s:.0f} s do not fit the {plan.budget_s:.0f} s budget"
        )
        return
    http_port = free_port()
    argv = server_argv("solution.benchmarks.served.host_floor", http_port, free_port())
    env = {**server_env(standins, cuda), "CLS_CUDA_GRAPHS": "off"}
    log = inputs.log.with_name("served-floor.log")
    server = Server("host floor", argv, http_port, log, env=env, start_s=start_s)
    with record.step("host_floor") as result, server:
        result["started_in_s"] = round(server.started_in_s, 1)
        result["health"] = http_closed(server.url, 1, plan, inputs, metrics=False, mode="health")
        closed_loops(record, result, server.url, users, plan, inputs, budget, metrics=False)
    append_log(inputs.log, log)


def closed_loops(
    record: Record,
    result: dict[str, Any],
    url: str,
    users: tuple[int, ...],
    plan: Plan,
    inputs: Inputs,
    budget: Budget,
    metrics: bool,
) -> None:
    """HTTP closed loops at each level of ``users`` into ``result["http"]``, saved after each;
    a level that would start past the budget is left out."""
    http: list[dict[str, Any]] = []
    result["http"] = http
    for n in users:
        if budget.left():
            http.append(http_closed(url, n, plan, inputs, metrics=metrics))
            record.save()


def append_log(into: Path, log: Path) -> None:
    """Server logs go into the one log file that comes back (at most 8 files leave the GPU)."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return
    with into.open("a") as f:
        f.write(f"--- {log.name} (last 200 lines)\n" + "\n".join(text.splitlines()[-200:]) + "\n")
    log.unlink()


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
