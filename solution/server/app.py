"""Wiring: settings -> models -> engine -> front-ends, plus start-up and graceful shutdown.

Start: the front-ends listen first (``/health`` answers, ``/ready`` says 503), the models load in a
worker thread, one warm-up batch runs, then the service reports ready.
Stop (SIGTERM/SIGINT): stop listening, report not-ready, finish accepted work within the grace
period, close connections, exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from typing import Any

import torch

from solution.server.compute.families import group_families
from solution.server.compute.models import load_model_specs, load_models
from solution.server.config import Settings, pick_device, pick_dtype
from solution.server.engine.engine import Engine
from solution.server.engine.limits import BatchingLimits
from solution.server.engine.service import Service
from solution.server.http import protocol as http
from solution.server.http.routes import Routes
from solution.server.metrics import Metrics
from solution.server.rpc.servicer import STOP_GRACE_S, GrpcFrontend

log = logging.getLogger("solution.server")

# The warm-up batch: texts shaped like the reference client's (several scripts, emoji, URLs,
# control characters, the empty string) and one near the long lane's threshold, so the first
# client request meets tokenizers, kernels and allocator pools that have already run.
WARMUP_TEXTS = (
    "We ordered pizza and watched the game \U0001f525\U0001f60a https://t.co/tnXolAR",
    "Mañana voy al mercado con mi madre \x0e\x1a\t https://youtu.be/9teLbmz",
    "Es regnet schon wieder in München \u26bd",
    "我姐姐从去年开始住在广州 \U0001f30d Το τρένο για τη Θεσσαλονίκη φεύγει στις οκτώ",
    "Önce kahve, sonra e-postalar \U0001f44d Bugün İstanbul'da yine yağmur yağıyor",
    "Free crypto giveaway! Click here and send BTC 1xSdJWPMaaugvrzfArxuaiDqaH4rz6",
    "",
    "x" * 4000,
)


def build_engine(settings: Settings) -> Engine:
    """Load the configured models and group their tokenizers; blocking (call from a thread)."""
    device = pick_device(settings.device)
    dtype = pick_dtype(settings.dtype, device)
    if device.type == "cpu" and settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    specs = load_model_specs(settings.model_config, settings.models_dir)
    models = load_models(specs, device, dtype, settings.max_text_tokens)
    families = group_families(
        [m.tokenizer for m in models], [m.key for m in models], [m.max_tokens for m in models]
    )
    limits = BatchingLimits.from_settings(settings, device.type)
    log.info(
        "models loaded",
        extra={  # the one start-up line with everything that decides behaviour
            "config": settings.public(),
            "device": str(device),
            "dtype": str(dtype).removeprefix("torch."),
            "threads": torch.get_num_threads(),
            "models": {m.key: m.spec.source for m in models},
            "families": [f.name for f in families],
        },
    )
    engine = Engine(models, families, device, limits)
    engine.worker_nice = settings.worker_nice if device.type == "cpu" else 0
    graphs = engine.runner.prepare(
        settings.cuda_graphs,
        max_rows=limits.max_batch_texts,
        max_length=max(f.max_tokens for f in families),
        max_tokens=limits.max_batch_tokens,
    )
    # what was captured, in what time and memory, within which budgets, and the cost table
    log.info("cuda graphs", extra={"graphs": graphs})
    return engine


class App:
    def __init__(self, settings: Settings, *, freeze_heap: bool = False):
        """``freeze_heap``: after warm-up, move every object alive into the collector's permanent
        generation (``gc.freeze``), as the server process does; off where one process starts
        many apps (tests), whose later garbage it would keep."""
        self.settings = settings
        self.freeze_heap = freeze_heap
        self.engine: Engine | None = None
        self.http_state: http.ServerState | None = None
        self.servers: list[Any] = []
        self.stopped = asyncio.Event()
        self.stopping = False
        self.grpc: GrpcFrontend | None = None  # the gRPC front-end, when enabled
        self.metrics = Metrics()
        self.exit_code = 0  # 1 once the engine has failed: the orchestrator should restart us
        self._failing: asyncio.Future[None] | None = None  # the shutdown an engine failure began
        # the one entry point of both front-ends; bound to the engine once the models load
        self.service = Service(settings.max_texts_per_request, self.metrics.observe_request)

    def _observe_http(
        self, request: http.Request | http.RequestHead, status: int, seconds: float
    ) -> None:
        self.service.observe("http", request.path, str(status), seconds)

    async def start(self) -> None:
        """Listen, load, warm up. Raises if the models cannot be loaded."""
        s = self.settings
        log.info("starting", extra={"http_port": s.http_port, "grpc_port": s.grpc_port})
        # Both front-ends listen before the models load: /health answers, /ready and gRPC health
        # say "not yet", and requests get 503 / UNAVAILABLE instead of connection refused.
        routes = Routes(self.service, self.metrics.render)
        if s.enable_http:
            self.http_state = http.ServerState(
                s,
                routes,
                on_response=self._observe_http,
                client_closed=self.service.client_closed,
            )
            self.servers.append(await http.serve(self.http_state, s.host, s.http_port))
        if s.enable_grpc:
            self.grpc = GrpcFrontend(self.service, s)
            await self.grpc.start()  # health: NOT_SERVING
        self.engine = await asyncio.to_thread(build_engine, s)
        self.engine.on_fatal = self._engine_failed
        self.engine.start()
        self.metrics.attach(self.engine)
        self.service.bind(self.engine)
        await self.engine.warm_up(WARMUP_TEXTS)
        if self.freeze_heap:
            # What start-up built (modules, tokenizers, the models' Python objects: some 370,000
            # tracked objects) lives as long as the process. Left in the oldest generation, it
            # was scanned by each full collection under load: 0.15-0.2 s with every thread that
            # needs the GIL stopped, 16 times in make stress's floods. Frozen, it is not.
            gc.collect()
            gc.freeze()
        if self.grpc is not None:
            await self.grpc.set_serving()
        log.info(
            "ready",
            extra={
                "http_port": s.http_port if s.enable_http else None,
                "grpc_port": self.grpc.port if self.grpc is not None else None,
            },
        )

    def _engine_failed(self, exc: BaseException) -> None:
        """A worker died or the device is lost (the engine has answered every held text and
        logged it): stop serving and exit non-zero, so Kubernetes restarts the pod."""
        self.exit_code = 1
        self._failing = asyncio.ensure_future(self.shutdown())

    async def shutdown(self) -> None:
        """Drain: refuse new work, finish what was accepted (within the grace period), close."""
        if self.stopping:
            return
        self.stopping = True
        log.info("shutdown started", extra={"grace_s": self.settings.shutdown_grace_s})
        loop = asyncio.get_running_loop()
        grace_ends = loop.time() + self.settings.shutdown_grace_s
        for server in self.servers:
            server.close()
        if self.http_state is not None:
            self.http_state.drain()  # connections close after their last answer, between requests
        if self.grpc is not None:
            await self.grpc.drain()  # health: NOT_SERVING; the engine refuses new RPCs
        finished = True
        if self.engine is not None:
            finished = await self.engine.drain(self.settings.shutdown_grace_s)
        if self.http_state is not None:
            # every request received is answered; the last answers need a moment to be read
            remaining = max(grace_ends - loop.time(), http.LINGER_S)
            if not await self.http_state.wait_closed(remaining):
                log.warning("shutdown: HTTP connections still open at the end were aborted")
        if self.engine is not None:
            await asyncio.to_thread(self.engine.stop)
        if self.grpc is not None:
            # the calls grpc's core still holds reach a handler (refused) within what is left
            await self.grpc.stop(settle_s=max(grace_ends - loop.time(), STOP_GRACE_S))
        log.info("shutdown complete", extra={"all_answered": finished})
        self.stopped.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(self.shutdown()))
        start = asyncio.ensure_future(self.start())
        done, _ = await asyncio.wait(
            {start, asyncio.ensure_future(self.stopped.wait())}, return_when=asyncio.FIRST_COMPLETED
        )
        if start in done:
            start.result()  # raise a start-up failure
            await self.stopped.wait()
        else:
            start.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await start
