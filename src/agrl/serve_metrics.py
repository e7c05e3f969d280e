"""What the judge server tells operators: Prometheus metrics and rolling latency percentiles.

One registry per app (two servers in one process, as in the tests and the load benchmark, do not
share counters). `/metrics` is the Prometheus text format: `agrl_queue_depth`,
`agrl_requests_total{outcome}`, `agrl_batch_products` and `agrl_request_seconds` (histograms).
"""

from __future__ import annotations

import collections

import numpy as np
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from agrl.batching import MicroBatcher

OUTCOMES = ("ok", "shed", "timeout", "disconnected")
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class ServerMetrics:
    def __init__(self, max_batch: int):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "agrl_requests", "judge requests by outcome", ["outcome"], registry=self.registry
        )
        for outcome in OUTCOMES:
            self.requests.labels(outcome)
        buckets = sorted({1, 2, 4, 8, 16, 32, 64, 128, 256, max_batch})
        self.batch_products = Histogram("agrl_batch_products", "products per model batch",
                                        buckets=[b for b in buckets if b <= max_batch], registry=self.registry)  # fmt: skip
        self.latency = Histogram("agrl_request_seconds", "time from arrival to answer (judged requests)",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)  # fmt: skip
        self._recent: collections.deque[float] = collections.deque(maxlen=2000)

    def watch(self, batcher: MicroBatcher) -> None:
        """Gauges read from the batcher at each scrape."""
        gauges = (("agrl_queue_depth", "requests waiting to be judged", lambda: batcher.depth),
                  ("agrl_batches", "model batches run", lambda: batcher.stats.batches),
                  ("agrl_dropped_requests", "requests dropped unjudged (client gone, timed out): before their batch ran, or with a batch stopped once all its requests had gone",
                   lambda: batcher.stats.dropped),
                  ("agrl_stopped_batches", "model batches stopped mid-way because every request in them had gone",
                   lambda: batcher.stats.stopped))  # fmt: skip
        for name, doc, read in gauges:
            Gauge(name, doc, registry=self.registry).set_function(read)

    def count(self, outcome: str) -> None:
        self.requests.labels(outcome).inc()

    def observe(self, seconds: float) -> None:
        self.count("ok")
        self.latency.observe(seconds)
        self._recent.append(seconds)

    def refuse(self, outcome: str, why: str, retry_after: int) -> JSONResponse:
        """503 with Retry-After: shed at the door, or timed out in the queue."""
        self.count(outcome)
        return JSONResponse({"detail": why}, status_code=503, headers={"Retry-After": str(retry_after)})

    def latency_percentiles(self) -> dict[str, float | None]:
        """p50/p95/p99 of the last 2,000 judged requests, in seconds (None before the first)."""
        values = np.array(self._recent)
        keys = ("p50_s", "p95_s", "p99_s")
        if not len(values):
            return dict.fromkeys(keys)
        return {k: float(np.percentile(values, q)) for k, q in zip(keys, (50, 95, 99))}

    def render(self) -> bytes:
        return generate_latest(self.registry)
