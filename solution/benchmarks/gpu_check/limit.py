"""Step 5, the graph limit: how many of the load's texts per second the five models can take when
nothing but graph replays runs, a ceiling the served path is measured against.

The texts are the ones the served-path load sends (``load_texts``: about 120 tokens per model,
where the parity corpus has about 55: a limit on other texts would not be comparable). They are
tokenized once per tokenizer family, sorted by length and cut into chunks of B rows; each chunk
is padded to the smallest bucket ``(B, L)`` of the server's length steps that holds it, staged on
the device before the clock starts, and replayed for the five models on their own streams with
4D boolean masks (``graphs.CapturedForward``; a 2D mask would cost transformers a host sync per
model per call). Chunks run back to back, in a seeded random order, until ``--min-seconds`` have
passed; the host waits once per pass. Texts/s per B, the best B is the limit.

``one_replay_ms`` is one call set of the five at B=1 (one text), waited for alone: the floor of a
single request's latency.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from typing import Any

import torch

from solution.server.compute import planning
from solution.server.compute.buckets import BucketGrid, Shape
from solution.server.compute.families import Family
from solution.server.compute.graphs import CapturedForward, capture_all, capture_cuda
from solution.server.compute.models import LoadedModel
from solution.server.compute.streams import CudaStreams, Sequential

from .common import Setup, release

# per chunk: its bucket, its number of texts, and per family the staged (ids, mask)
Staged = list[tuple[Shape, int, list[tuple[torch.Tensor, torch.Tensor]]]]


def bucket_length(longest: int, lengths: tuple[int, ...]) -> int:
    """The smallest of the grid's lengths that holds ``longest`` tokens (512 at most)."""
    return next((n for n in sorted(lengths) if n >= longest), max(lengths))


def chunks_of(cost: list[int], rows: int) -> list[list[int]]:
    """Text indices sorted by cost, cut into chunks of ``rows`` (the last may be short)."""
    order = sorted(range(len(cost)), key=lambda i: cost[i])
    return [order[k : k + rows] for k in range(0, len(order), rows)]


def stage(
    families: list[Family],
    ids: list[list[list[int]]],
    chunks: list[list[int]],
    rows: int,
    ops: Sequential,
) -> Staged:
    """Every chunk, bucket-padded per family, uploaded before timing."""
    lengths = BucketGrid().lengths
    staged: Staged = []
    for chunk in chunks:
        longest = max(max(len(ids[f][i]) for i in chunk) for f in range(len(families)))
        shape = (rows, bucket_length(longest, lengths))
        arrays = []
        for f, family in enumerate(families):
            seqs = [ids[f][i][: shape[1]] for i in chunk]
            call = planning.forward_call(seqs, range(len(seqs)), family.pad_id, shape)
            arrays += [call.input_ids, call.attention_mask]
        tensors = ops.upload(arrays).tensors
        pairs = [(tensors[2 * f], tensors[2 * f + 1]) for f in range(len(families))]
        staged.append((shape, len(chunk), pairs))
    return staged


def replay_all(
    staged: Staged,
    families: list[Family],
    graphs: list[dict[Shape, CapturedForward]],
    streams: list[Any],
    ops: Sequential,
) -> None:
    """Every chunk once: the five models' replays issued back to back on their streams."""
    with torch.inference_mode():
        for shape, _, pairs in staged:
            for family, (ids, mask) in zip(families, pairs, strict=True):
                for m in family.members:
                    with ops.use(streams[m]):
                        graphs[m][shape](ids, mask)


def join(ops: Sequential, streams: list[Any]) -> None:
    """The host waits for every stream (once per pass)."""
    if isinstance(ops, CudaStreams):
        for stream in streams:
            stream.synchronize()


def measure_rows(
    rows: int,
    models: list[LoadedModel],
    families: list[Family],
    ids: list[list[list[int]]],
    setup: Setup,
) -> dict[str, Any]:
    """Texts/s of graph replays with chunks of ``rows`` texts."""
    args, cuda = setup.args, setup.device.type == "cuda"
    ops: Sequential = CudaStreams(setup.device) if cuda else Sequential()
    streams = [ops.new_stream() for _ in models]
    cost = [max(len(ids[f][i]) for f in range(len(families))) for i in range(len(ids[0]))]
    staged = stage(families, ids, chunks_of(cost, rows), rows, ops)
    ops.synchronize()  # the uploads ran on the copy stream: done before any replay reads them
    for stream in streams:
        ops.wait(stream, ops.current())  # (the staged inputs were copied and synchronised above)
    shapes = sorted({shape for shape, _, _ in staged})
    capture = setup.capture or capture_cuda
    graphs, report = capture_all(
        [m.model for m in models], streams, shapes, capture, args.capture_budget_s, 1 << 60
    )
    if report.skipped:
        return {"rows": rows, "status": "capture stopped", "captured": len(report.shapes)}
    random.Random(rows).shuffle(staged)
    replay_all(staged[:2], families, graphs, streams, ops)  # warm-up
    join(ops, streams)
    passes, texts = 0, 0
    start = time.perf_counter()
    while passes == 0 or time.perf_counter() - start < args.min_seconds:
        replay_all(staged, families, graphs, streams, ops)
        join(ops, streams)
        passes += 1
        texts += sum(n for _, n, _ in staged)
    seconds = time.perf_counter() - start
    padded = sum(s[0] * s[1] for s, _, _ in staged)
    real = sum(cost)
    out: dict[str, Any] = {
        "rows": rows,
        "texts_per_s": texts / seconds,
        "passes": passes,
        "seconds": round(seconds, 3),
        "buckets": [f"{b}x{n}" for b, n in shapes],
        "capture_s": round(report.seconds, 2),
        "padding_ratio": round(padded / max(real, 1), 2),  # bucket tokens / the texts' tokens
    }
    if rows == 1:
        out["one_replay_ms"] = one_replay_ms(staged, families, graphs, streams, ops)
    del graphs, staged
    release()
    return out


def one_replay_ms(
    staged: Staged,
    families: list[Family],
    graphs: list[dict[Shape, CapturedForward]],
    streams: list[Any],
    ops: Sequential,
    samples: int = 50,
) -> float:
    """Median wall time of one text's call set of the five, waited for alone."""
    times = []
    for item in staged[:samples]:
        start = time.perf_counter()
        replay_all([item], families, graphs, streams, ops)
        join(ops, streams)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def graph_limit(
    result: dict[str, Any],
    *,
    args: argparse.Namespace,
    setup: Setup,
    models: list[LoadedModel],
    families: list[Family],
    texts: list[str],
) -> None:
    ids = [f.encode(texts) for f in families]
    per_model = [0.0] * len(models)
    for f, family in enumerate(families):
        mean = statistics.fmean(len(s) for s in ids[f])
        for m in family.members:
            per_model[m] = mean
    result["texts"] = len(texts)
    result["tokens_per_text"] = {m.key: round(t, 1) for m, t in zip(models, per_model, strict=True)}
    runs = []
    for rows in [int(b) for b in args.limit_rows.split(",")]:
        runs.append(measure_rows(rows, models, families, ids, setup))
        result["runs"] = runs
    done = [r for r in runs if "texts_per_s" in r]
    if done:
        result["best"] = max(done, key=lambda r: r["texts_per_s"])
    one = next((r["one_replay_ms"] for r in done if "one_replay_ms" in r), None)
    result["one_replay_ms"] = one
