"""gRPC ``ClassifyBatch`` calls of B texts each, in a closed loop of C concurrent callers over a
few connections: the batch API's throughput in texts per second. Requests are serialised
before the clock starts with the generated stubs; each answer is decoded and every text's result
checked as HTTP's are (five keys, labels in their sets, score > 0)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc

from solution.proto.classifier.v1 import classifier_pb2 as pb
from solution.server.config import Settings

from ..checks import LabelSets, check_result
from ..stats import percentile

METHOD = "/classifier.v1.Classifier/ClassifyBatch"
# the calls a connection may have open on a server with the default settings
STREAMS_PER_CONNECTION = Settings().grpc_max_streams_per_connection


def requests(texts: list[str], batch: int, count: int = 64) -> list[bytes]:
    """``count`` serialised requests of ``batch`` consecutive texts (cycling through ``texts``)."""
    out = []
    for i in range(count):
        chunk = [texts[(i * batch + j) % len(texts)] for j in range(batch)]
        out.append(bytes(pb.ClassifyBatchRequest(texts=chunk).SerializeToString()))
    return out


def check_answer(data: bytes, batch: int, labels: LabelSets) -> str | None:
    results = pb.ClassifyBatchResponse.FromString(data).results
    if len(results) != batch:
        return f"{len(results)} results for {batch} texts"
    for r in results:
        decoded = {p.model: {"score": p.score, "label": p.label} for p in r.predictions}
        problem = check_result(decoded, labels)
        if problem is not None:
            return problem[1]
    return None


async def closed_loop(
    address: str,
    texts: list[str],
    labels: LabelSets,
    *,
    batch: int,
    callers: int,
    seconds: float,
    warmup_s: float,
    channels: int = 4,
) -> dict[str, Any]:
    """C callers each sending the next batch as soon as the last is answered; figures over the
    window after ``warmup_s``."""
    bodies = requests(texts, batch)
    # a connection each (grpc shares one between channels otherwise), and enough of them that no
    # caller waits in the client for a stream (CLS_GRPC_MAX_STREAMS_PER_CONNECTION)
    n = min(callers, max(channels, -(-callers // STREAMS_PER_CONNECTION)))
    own = [("grpc.use_local_subchannel_pool", 1)]
    chans = [grpc.aio.insecure_channel(address, options=own) for _ in range(n)]
    calls = [c.unary_unary(METHOD, lambda b: b, lambda b: b) for c in chans]
    start = time.perf_counter()
    window = (start + warmup_s, start + warmup_s + seconds)
    latencies: list[float] = []
    failures: list[str] = []

    async def caller(k: int) -> None:
        i = k
        while time.perf_counter() < window[1]:
            sent = time.perf_counter()
            problem: str | None
            try:
                data = await calls[k % len(calls)](bodies[i % len(bodies)], timeout=60)
                problem = check_answer(data, batch, labels)
            except grpc.RpcError as exc:
                problem = f"{exc.code()}: {exc.details()}"
            done = time.perf_counter()
            if window[0] <= done <= window[1]:  # completions in the window, as k6 counts
                if problem is None:
                    latencies.append(1000 * (done - sent))
                else:
                    failures.append(problem)
            i += callers

    try:
        await asyncio.gather(*(caller(k) for k in range(callers)))
    finally:
        for c in chans:
            await c.close()
    return {
        "callers": callers,
        "batch": batch,
        "calls": len(latencies),
        "texts_per_s": len(latencies) * batch / seconds,
        "latency_ms": _percentiles(latencies),
        "failed": len(failures),
        "first_failure": failures[0] if failures else None,
    }


def _percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {f"p{q}": percentile(ordered, q) for q in (50, 95, 99)} | {"max": ordered[-1]}
