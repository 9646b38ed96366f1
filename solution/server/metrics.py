"""Prometheus metrics, fed by hooks rather than calls sprinkled through handlers:

- ``observe_request`` is each front-end's one response hook (protocol, route, status, seconds);
- ``observe_batch`` is an engine observer, called once per batch from the compute thread;
- queue depth, drops and refusals are read from the engine when scraped.

Each ``Metrics`` has its own registry, so several services (tests) can live in one process.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from solution.server.engine.batches import BatchReport
from solution.server.engine.engine import Engine

# Latency buckets from 1 ms (a cache-warm tiny batch) to 10 s (a deep queue on a CPU).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_TEXT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
BATCH_TOKEN_BUCKETS = (64, 256, 1024, 2048, 4096, 8192, 16384, 32768)
RATIO_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "classifier_requests", "Requests answered", ["protocol", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "classifier_request_seconds",
            "Time from parsed request to response",
            ["protocol", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_texts = Histogram(
            "classifier_batch_texts",
            "Texts per computed batch",
            buckets=BATCH_TEXT_BUCKETS,
            registry=r,
        )
        self.batch_tokens = Histogram(
            "classifier_batch_tokens",
            "Real tokens per batch",
            buckets=BATCH_TOKEN_BUCKETS,
            registry=r,
        )
        self.padding = Histogram(
            "classifier_batch_padding_ratio",
            "Share of a batch's computed positions that were padding, per tokenizer family",
            ["family"],
            buckets=RATIO_BUCKETS,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "classifier_batch_seconds",
            "Compute time per batch",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.model_seconds = Counter(
            "classifier_model_compute_seconds",
            "Compute time per model (GPU stream time on cuda: the models overlap)",
            ["model"],
            registry=r,
        )
        self.failed = Counter("classifier_failed_texts", "Texts a model failed on", registry=r)
        self.forward_calls = Counter(
            "classifier_forward_calls",
            "Model forward calls by path: graph (a CUDA graph replayed) or eager",
            ["path"],
            registry=r,
        )
        for path in ("graph", "eager"):  # both series exist from the start, at 0
            self.forward_calls.labels(path)
        self.gpu_busy = Counter(
            "classifier_gpu_busy_seconds",
            "GPU busy time: per batch, from an event before its first launch to the end of its "
            "last model stream (the streams overlap inside it); on the CPU the forwards' time",
            registry=r,
        )
        # (protocol, route, status) -> its request counter and latency histogram series
        self._request_series: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}

    def attach(self, engine: Engine) -> None:
        engine.observers.append(self.observe_batch)
        self.registry.register(_EngineCollector(engine))

    def observe_request(self, protocol: str, route: str, status: str, seconds: float) -> None:
        # Every request ends here: look each label set's series up once (the labels are bounded:
        # the front-ends' routes, "other", the status codes), not twice per request.
        key = (protocol, route, status)
        series = self._request_series.get(key)
        if series is None:
            series = (self.requests.labels(*key), self.latency.labels(protocol, route))
            self._request_series[key] = series
        series[0].inc()
        series[1].observe(seconds)

    def observe_batch(self, report: BatchReport) -> None:
        if report.warmup:  # the start-up batch is not serving traffic
            return
        self.batch_texts.observe(report.texts)
        self.batch_tokens.observe(report.tokens)
        for family, ratio in report.padding.items():
            self.padding.labels(family).observe(ratio)
        self.batch_seconds.observe(report.wall_s)
        for model, seconds in report.model_gpu_seconds.items():
            self.model_seconds.labels(model).inc(seconds)
        self.failed.inc(report.failed_texts)
        for path, calls in report.calls_by_path.items():
            self.forward_calls.labels(path).inc(calls)
        self.gpu_busy.inc(report.gpu_busy_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _EngineCollector(Collector):
    """Values the engine already keeps, read at scrape time instead of mirrored."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        now = self.engine.snapshot()
        yield GaugeMetricFamily(
            "classifier_queue_texts",
            "Texts admitted and waiting for a batch (what CLS_QUEUE_TEXTS limits)",
            value=now.waiting_texts,
        )
        by_class = GaugeMetricFamily(
            "classifier_queue_class_texts",
            "Waiting texts by class: live clients', and closed connections' (served last, shed "
            "first)",
            labels=["class"],
        )
        for name, count in sorted(now.waiting_by_class.items()):
            by_class.add_metric([name], count)
        yield by_class
        yield GaugeMetricFamily(
            "classifier_computing_texts",
            "Texts in the batch being computed",
            value=now.computing_texts,
        )
        dropped = CounterMetricFamily(
            "classifier_dropped_texts",
            "Texts that left without being computed, by reason",
            labels=["reason"],
        )
        for reason, count in sorted(now.dropped.items()):
            dropped.add_metric([reason], count)
        yield dropped
        yield GaugeMetricFamily(
            "classifier_ready", "1 when models are loaded and warm", value=int(now.ready)
        )
        refused = CounterMetricFamily(
            "classifier_refused", "Requests refused at admission", labels=["reason"]
        )
        for reason, count in sorted(now.refused.items()):
            refused.add_metric([reason], count)
        yield refused
