"""The benchmark suite behind ``make bench`` (short, ~10 min on 2 cores) and ``make bench-full``
(the headline run). One machine, one run, the same texts and the same base-size stand-ins for
every peer; servers run one at a time (each base-size model process takes ~5 GB).

Parts, in order (``--only`` picks some, for debugging): ``http`` (the HTTP layer alone and the
generator's ceiling), ``limit`` (bare forward, fp32 and bf16, parity), ``sweep`` (CLS_MAX_WAIT_MS
on the engine), ``naive``, ``winner``, ``service`` (HTTP, gRPC when its stubs exist, bf16).
Results: ``results/bench-<plan>.json``, PNG plots beside it, the tables in the README.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import uvloop

from solution.server.config import cpu_has_native_bf16
from solution.standins.corpus import reference_texts

from . import report, scenarios
from .checks import LabelSets, check_http, expected_labels
from .grpc_client import CLASSIFY, GrpcTarget
from .http_client import HttpTarget, status_only
from .load import Target, closed_loop
from .machine import CpuShare, machine_info
from .procs import Server, free_port
from .stats import format_summary
from .tokens import format_tokens, token_stats

PY = sys.executable
# The best published entry to the original challenge peaked at 160 req/s on the reference T4
# (shared/GPU.md). Replays scale the reference arrival rates by (our bare limit / 160), so the
# load keeps its ratio to capacity on a machine that has a fraction of the T4's.
REFERENCE_CAPACITY_RPS = 160.0
# bf16 is measured where the CPU runs it natively; elsewhere the server refuses it (runner.py)
DTYPES = ("fp32", "bf16") if cpu_has_native_bf16() else ("fp32",)


@dataclass(frozen=True)
class Plan:
    name: str
    texts: int  # distinct texts every load cycles through
    http_levels: tuple[int, ...]  # connections, HTTP layer
    http_s: float
    limit_batches: str
    limit_min_s: float
    parity: int
    model_levels: tuple[int, ...]  # closed-loop users, model peers
    saturation: int  # the level quoted as saturation
    model_s: float
    model_warmup_s: float
    naive_levels: tuple[int, ...]
    replay_scale: float
    sweep_waits: str
    sweep_s: float
    winner_bf16: bool


SHORT = Plan(
    "short",
    texts=512,
    http_levels=(1, 16, 64),
    http_s=3.0,
    limit_batches="1,4,16",
    limit_min_s=10.0,
    parity=32,
    model_levels=(1, 16),
    saturation=16,  # one round of 16 base-size texts takes ~10 s on 2 cores: 3 rounds in 30 s
    model_s=30.0,
    model_warmup_s=0.0,
    naive_levels=(1, 4),
    replay_scale=0.1,
    sweep_waits="0,10",
    sweep_s=12.0,
    winner_bf16=False,
)
FULL = Plan(
    "full",
    texts=2000,
    http_levels=(1, 4, 16, 64, 256),
    http_s=8.0,
    limit_batches="1,4,8,16,32,64",
    limit_min_s=15.0,
    parity=128,
    model_levels=(1, 4, 16, 32, 64),
    saturation=32,
    model_s=60.0,
    model_warmup_s=15.0,
    naive_levels=(1, 4, 16),
    replay_scale=0.5,
    sweep_waits="0,2,5,10,20",
    sweep_s=40.0,
    winner_bf16=True,
)
# A few seconds per part: checks that every part runs (tiny stand-ins), measures nothing.
SMOKE = Plan(
    "smoke",
    texts=64,
    http_levels=(1, 8),
    http_s=1.0,
    limit_batches="1,8",
    limit_min_s=0.5,
    parity=8,
    model_levels=(1, 8),
    saturation=8,
    model_s=2.0,
    model_warmup_s=0.5,
    naive_levels=(1,),
    replay_scale=0.02,
    sweep_waits="0,5",
    sweep_s=2.0,
    winner_bf16=False,
)
PLANS = {p.name: p for p in (SHORT, FULL, SMOKE)}


class Suite:
    def __init__(
        self, plan: Plan, out: Path, models_dir: str, only: set[str], threads: int, omp_wait: str
    ):
        self.plan = plan
        self.threads = threads
        self.omp_wait = omp_wait
        self.out = out
        self.tmp = out / "tmp"  # logs and part results; not only a side effect of the HTTP part
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.models_dir = models_dir
        self.only = only
        self.texts = reference_texts(plan.texts, seed=0)
        self.labels: LabelSets = expected_labels(models_dir=models_dir)

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """Every model process gets the same intra-op threads (0: torch's default, all cores) and
        OpenMP wait policy. PASSIVE by default: on 2 cores shared with any other busy process,
        OpenMP's spinning barrier made a 2-thread forward ~10x slower (1.8 s instead of 0.16 s,
        base model, one text); PASSIVE keeps it within 20% of the 1-thread time."""
        env = dict(extra or {})
        if self.omp_wait:
            env["OMP_WAIT_POLICY"] = self.omp_wait
        if self.threads:
            n = str(self.threads)
            env.update(OMP_NUM_THREADS=n, MKL_NUM_THREADS=n, CLS_TORCH_THREADS=n)
        return env

    def want(self, part: str) -> bool:
        return not self.only or part in self.only

    # ---- loads -------------------------------------------------------------------------------

    def http_target(self, url: str, checked: bool = True, timeout_s: float = 120.0) -> HttpTarget:
        labels = self.labels

        def check(status: int, body: bytes) -> tuple[str, str] | None:
            return check_http(status, body, labels)

        return HttpTarget(url, self.texts, check if checked else status_only, timeout_s)

    def closed(self, target: Target, vus: int, seconds: float, warmup_s: float) -> dict[str, Any]:
        async def go() -> dict[str, Any]:
            try:
                tally = await closed_loop(target, vus, seconds, warmup_s=warmup_s, progress_s=10.0)
            finally:
                await target.aclose()
            return tally.summary()

        summary = uvloop.run(go())
        print(format_summary(f"  {target.name} {vus} users", summary), file=sys.stderr)
        return summary

    def drain(self, url: str) -> None:
        """One unrecorded request: FIFO servers answer it once earlier work is done."""

        async def go() -> None:
            exchange = await self.http_target(url, checked=False, timeout_s=600.0).connect()
            await exchange.send(0)
            exchange.close()

        uvloop.run(go())

    # ---- parts -------------------------------------------------------------------------------

    def http_layer(self) -> dict[str, Any]:
        servers = {
            "trivial": ["-m", "solution.benchmarks.peers.trivial"],
            "ours": ["-m", "solution.benchmarks.peers.noop", "ours"],
            "uvicorn": ["-m", "solution.benchmarks.peers.noop", "uvicorn"],
        }
        result: dict[str, Any] = {}
        for name, argv in servers.items():
            port = free_port()
            with Server(
                name, [PY, *argv, "--port", str(port)], port, self.tmp / f"{name}.log"
            ) as s:
                levels = {}
                for n in self.plan.http_levels:
                    target = self.http_target(s.url, checked=False)
                    target.name = f"http-layer {name}"
                    levels[str(n)] = self.closed(target, n, self.plan.http_s, 0.5)
                result[name] = {"levels": levels, "wrk": self.wrk(s.url)}
        return result

    def wrk(self, url: str) -> dict[str, Any] | None:
        """wrk (C, one thread) at the top level, as a second opinion on the same servers."""
        if shutil.which("wrk") is None:
            return None
        script = self.tmp / "post.lua"
        body = json.dumps(self.texts[1])
        script.write_text(
            f'wrk.method = "POST"\nwrk.body = [==[{body}]==]\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
        connections = max(self.plan.http_levels)
        argv = ["wrk", "-t1", f"-c{connections}", f"-d{int(self.plan.http_s)}s", "--latency"]
        run = subprocess.run([*argv, "-s", str(script), url + "/process"], capture_output=True)
        text = run.stdout.decode(errors="replace")
        rps = next((ln.split()[1] for ln in text.splitlines() if "Requests/sec" in ln), "nan")
        return {"connections": connections, "requests_per_s": float(rps), "output": text}

    def limit(self) -> dict[str, Any]:
        return self.run_peer(
            "limit",
            ["--dtypes", ",".join(DTYPES), "--batch-sizes", self.plan.limit_batches],
            ["--min-seconds", str(self.plan.limit_min_s), "--parity", str(self.plan.parity)],
        )

    def sweep(self, capacity: float) -> dict[str, Any]:
        return self.run_peer(
            "engine_sweep",
            ["--capacity", f"{capacity:.4f}", "--waits", self.plan.sweep_waits],
            ["--seconds", str(self.plan.sweep_s)],
        )

    def run_peer(self, module: str, *options: list[str]) -> dict[str, Any]:
        """Run ``peers.<module>`` on the suite's models and texts; return the JSON it writes."""
        path = self.tmp / f"{module}.json"
        argv = [PY, "-m", f"solution.benchmarks.peers.{module}", "--models-dir", self.models_dir]
        argv += [arg for group in options for arg in group]
        argv += ["--texts", str(self.plan.texts), "--json", str(path)]
        subprocess.run(argv, check=True, env={**os.environ, **self.env()})
        return dict(json.loads(path.read_text()))

    def peer(
        self,
        name: str,
        argv: list[str],
        levels: tuple[int, ...],
        rate_scale: float | None,
        env: dict[str, str] | None = None,
        grpc_port: int | None = None,
        port: int | None = None,
    ) -> dict[str, Any]:
        port = port or free_port()
        result: dict[str, Any] = {"levels": {}}
        with Server(name, argv, port, self.tmp / f"{name}.log", self.env(env)) as s:
            result["start_s"] = s.started_in_s
            for n in levels:
                target = self.http_target(s.url)
                target.name = name
                warmup = self.plan.model_warmup_s if n > 1 else 0.0
                result["levels"][str(n)] = self.closed(target, n, self.plan.model_s, warmup)
                self.drain(s.url)
            if rate_scale is not None:
                result["replay"] = self.replay(name, self.http_target(s.url), rate_scale)
                self.drain(s.url)
            if grpc_port is not None:
                result["grpc"] = self.grpc(name, grpc_port)
        return result

    def replay(self, name: str, target: Target, rate_scale: float) -> list[dict[str, Any]]:
        target.name = name
        plan = scenarios.reference(self.plan.replay_scale, rate_scale)

        async def go() -> list[dict[str, Any]]:
            try:
                return await scenarios.replay(target, plan, progress_s=10.0)
            finally:
                await target.aclose()

        results = uvloop.run(go())
        for r in results:
            print(format_summary(f"  {name} replay {r['scenario']}", r), file=sys.stderr)
        return results

    def grpc(self, name: str, port: int) -> dict[str, Any]:
        target = GrpcTarget(f"127.0.0.1:{port}", self.texts, CLASSIFY, self.labels, 120.0)
        target.name = f"{name} grpc"
        n = self.plan.saturation
        return {"levels": {str(n): self.closed(target, n, self.plan.model_s, 6.0)}}

    def service_env(self, dtype: str, grpc_port: int) -> dict[str, str]:
        return {
            "CLS_MODELS_DIR": self.models_dir,
            "CLS_DEVICE": "cpu",
            "CLS_DTYPE": dtype,
            "CLS_HOST": "127.0.0.1",
            "CLS_GRPC_PORT": str(grpc_port),
            "CLS_LOG_LEVEL": "WARNING",
            "HF_HUB_OFFLINE": "1",
        }


def run(
    plan: Plan, out: Path, models_dir: str, only: set[str], threads: int, omp_wait: str
) -> dict[str, Any]:
    suite = Suite(plan, out, models_dir, only, threads, omp_wait)
    share = CpuShare()
    started = time.perf_counter()
    doc: dict[str, Any] = {
        "plan": asdict(plan),
        "command": [PY, "-m", "solution.benchmarks", *sys.argv[1:]],
        "machine": machine_info(),
        "models_dir": models_dir,
        "threads": threads or "torch default (all cores)",
        "omp_wait_policy": omp_wait or "unset",
        "tokens": token_stats(suite.texts, models_dir),
        "peers": {},
    }
    print(format_tokens(doc["tokens"]), file=sys.stderr)
    doc["cpu_share_by_part"] = parts = {}
    mark = CpuShare()

    def part_done(name: str) -> None:
        nonlocal mark
        parts[name] = mark.stop()
        mark = CpuShare()

    if suite.want("http"):
        print("== the HTTP layer alone", file=sys.stderr)
        doc["http_layer"] = suite.http_layer()
        part_done("http")
    if suite.want("limit"):
        print("== bare forward limit", file=sys.stderr)
        doc["limit"] = suite.limit()
        part_done("limit")
    capacity = report.limit_rps(doc) or 1.0
    rate_scale = capacity / REFERENCE_CAPACITY_RPS
    doc["replay_rate_scale"] = rate_scale
    if suite.want("sweep"):
        print("== CLS_MAX_WAIT_MS on the engine", file=sys.stderr)
        doc["sweep"] = suite.sweep(capacity)
        part_done("sweep")
    model = ["--models-dir", models_dir, "--port"]
    peers = "solution.benchmarks.peers"
    if suite.want("naive"):
        print("== naive peer", file=sys.stderr)
        port = free_port()
        argv = [PY, "-m", f"{peers}.naive", *model, str(port)]
        doc["peers"]["naive-fp32"] = suite.peer(
            "naive-fp32", argv, plan.naive_levels, None, port=port
        )
        part_done("naive-fp32")
    if suite.want("winner"):
        for dtype in DTYPES if plan.winner_bf16 else ("fp32",):
            print(f"== winner-style peer {dtype}", file=sys.stderr)
            port = free_port()
            argv = [PY, "-m", f"{peers}.winner", *model, str(port), "--dtype", dtype]
            doc["peers"][f"winner-{dtype}"] = suite.peer(
                f"winner-{dtype}",
                argv,
                plan.model_levels,
                rate_scale if dtype == "fp32" else None,
                port=port,
            )
            part_done(f"winner-{dtype}")
    if suite.want("service"):
        for dtype in DTYPES:
            print(f"== this service {dtype}", file=sys.stderr)
            port, grpc_port = free_port(), free_port()
            argv = [PY, "-m", "solution.server", "--http-port", str(port)]
            doc["peers"][f"service-{dtype}"] = suite.peer(
                f"service-{dtype}",
                argv,
                plan.model_levels,
                rate_scale if dtype == "fp32" else None,
                env=suite.service_env(dtype, grpc_port),
                grpc_port=grpc_port if dtype == "fp32" else None,
                port=port,
            )
            part_done(f"service-{dtype}")
    doc["cpu_share"] = share.stop()
    doc["wall_s"] = round(time.perf_counter() - started, 1)
    doc["ratios"] = report.ratios(doc)
    return doc


def main(args: argparse.Namespace) -> int:
    plan = PLANS[args.plan]
    only = {p for p in args.only.split(",") if p}
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    doc = run(plan, out, args.models_dir, only, args.threads, args.omp_wait_policy)
    name = f"bench-{plan.name}" if not only else f"bench-{plan.name}-partial"
    (out / f"{name}.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    report.plots(doc, out, name)
    table = report.markdown(doc, name)
    (out / f"{name}.md").write_text(table)
    if not only and plan is not SMOKE:
        report.update_readme(Path(__file__).with_name("README.md"), plan.name, table)
    print(table)
    return 0
