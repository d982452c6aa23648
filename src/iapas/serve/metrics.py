"""Prometheus metrics of one server (its own registry, so several apps in one process never collide)."""
from __future__ import annotations

from typing import Any

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """Requests, latency, verdicts, errors, queue depth and model time."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("iapas_requests_total", "HTTP requests answered", ["route", "method", "status"],
                                registry=self.registry)
        self.latency = Histogram("iapas_request_duration_seconds", "Time from request to answer", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.inference = Histogram("iapas_inference_duration_seconds", "Model time per image", ["line"],
                                   buckets=LATENCY_BUCKETS, registry=self.registry)
        self.verdicts = Counter("iapas_verdicts_total", "Inspections by verdict", ["line", "verdict"],
                                registry=self.registry)
        self.errors = Counter("iapas_errors_total", "Requests refused or failed, by kind", ["kind"],
                              registry=self.registry)
        self.queue_depth = Gauge("iapas_queue_depth", "Requests waiting or being worked on", registry=self.registry)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def error(self, kind: str, **_: Any) -> None:
        self.errors.labels(kind).inc()
