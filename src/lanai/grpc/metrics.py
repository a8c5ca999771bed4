"""The gRPC door's Prometheus metrics, on the data plane's registry (served at the HTTP door's /metrics)."""

from __future__ import annotations

import weakref
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from lanai.telemetry.metrics import _LATENCY_BUCKETS

__all__ = ["GrpcMetrics", "grpc_metrics"]


class GrpcMetrics:
    """``lanai_grpc_requests_total{method,code}``, ``lanai_grpc_request_duration_seconds{method}`` and
    ``lanai_grpc_requests_in_flight``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "lanai_grpc_requests",
            "gRPC calls by method (service/method) and status code.",
            ["method", "code"],
            registry=registry,
        )
        self.seconds = Histogram(
            "lanai_grpc_request_duration_seconds",
            "Time from a gRPC call's arrival to its status, by method.",
            ["method"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge("lanai_grpc_requests_in_flight", "gRPC calls being handled now.", registry=registry)
        self._children: dict[tuple[str, str], tuple[Any, Any]] = {}

    def observe(self, method: str, code: str, seconds: float) -> None:
        children = self._children.get((method, code))
        if children is None:  # labels() builds a key and takes a lock on every call: once per pair
            children = self._children[method, code] = (self.requests.labels(method, code), self.seconds.labels(method))
        count, duration = children
        count.inc()
        duration.observe(seconds)


_BY_REGISTRY: weakref.WeakKeyDictionary[CollectorRegistry, GrpcMetrics] = weakref.WeakKeyDictionary()


def grpc_metrics(registry: CollectorRegistry) -> GrpcMetrics:
    """The gRPC metrics registered on ``registry``: created the first time, so that a door started again
    on the same data plane (a restart, tests) counts on rather than registering the names twice."""
    metrics = _BY_REGISTRY.get(registry)
    if metrics is None:
        metrics = _BY_REGISTRY[registry] = GrpcMetrics(registry)
    return metrics
