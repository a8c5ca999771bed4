"""Prometheus metrics, owned by one server instance (no global registry)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, disable_created_metrics
from prometheus_client.exposition import generate_latest

from lanai.batching import BatchStats

if TYPE_CHECKING:
    from lanai.generation import Usage
    from lanai.telemetry.monitor import Condition

__all__ = ["Metrics", "CONTENT_TYPE"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
_TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
HEALTH_STATES = ("loading", "ready", "draining", "degraded")
THROTTLE_CONDITIONS = ("under-voltage", "arm frequency capped", "throttled", "soft temperature limit")
ALERT_KINDS = ("high_temperature", "throttling", "under_voltage", "memory", "disk")
UPDATE_STATES = ("idle", "pulling", "verifying", "activating", "watching", "rolled_back")


class Metrics:
    """Every metric lanai exports, registered on a registry of its own."""

    def __init__(self) -> None:
        disable_created_metrics()  # the *_created series only double the exposition size
        self._batch_children: dict[str, tuple[Any, Any, Any]] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        r = self.registry
        self.requests = Counter(
            "lanai_requests",
            "HTTP requests by model, endpoint and status code.",
            ["model", "endpoint", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "lanai_request_duration_seconds",
            "Time from request to response, by model and endpoint.",
            ["model", "endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge("lanai_requests_in_flight", "HTTP requests being handled now.", registry=r)
        self.auth_refusals = Counter(
            "lanai_auth_refusals",
            "Requests refused by access control, by reason (missing, invalid, forbidden, rate_limited, …).",
            ["reason"],
            registry=r,
        )
        self.queue_seconds = Histogram(
            "lanai_queue_duration_seconds",
            "Time a request waited in its model's batch queue.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.compute_seconds = Histogram(
            "lanai_compute_duration_seconds",
            "Time one batch spent running on its backend.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.preprocess_seconds = Histogram(
            "lanai_preprocess_duration_seconds",
            "Time spent decoding and preprocessing one image.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "lanai_batch_size",
            "Rows per batch run on the backend.",
            ["model"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge("lanai_queue_depth", "Requests waiting in a model's queue.", ["model"], registry=r)
        self.time_to_first_token = Histogram(
            "lanai_llm_time_to_first_token_seconds",
            "From a generation request to its first token (queue and prompt included).",
            ["model"],
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self.generation_queue_seconds = Histogram(
            "lanai_llm_queue_duration_seconds",
            "Time a generation request waited for a free slot.",
            ["model"],
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self.tokens_per_second = Histogram(
            "lanai_llm_tokens_per_second",
            "Decoding speed of each generation request, after its first token.",
            ["model"],
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
            registry=r,
        )
        self.prompt_tokens = Counter("lanai_llm_prompt_tokens", "Prompt tokens read.", ["model"], registry=r)
        self.completion_tokens = Counter("lanai_llm_completion_tokens", "Tokens generated.", ["model"], registry=r)
        self.embedding_cache_hits = Counter(
            "lanai_embedding_cache_hits", "Embedding requests answered from the cache.", ["model"], registry=r
        )
        self.embedding_cache_misses = Counter(
            "lanai_embedding_cache_misses", "Embedding requests the cache did not hold.", ["model"], registry=r
        )
        self.embedding_cache_bytes = Gauge(
            "lanai_embedding_cache_bytes", "Bytes of answers held in the embedding cache's memory.", registry=r
        )
        self.model_info = Gauge(
            "lanai_model_info",
            "Loaded models (value 1), with version, backend, execution provider and digest (the registry "
            "artifact's when pulled, else the model file's sha256).",
            ["model", "version", "backend", "provider", "digest"],
            registry=r,
        )
        self.health_state = Gauge(
            "lanai_health_state", "1 for the box's readiness state now (loading, ready, draining, degraded).",
            ["state"], registry=r,
        )  # fmt: skip
        self.temperature = Gauge("lanai_temperature_celsius", "The hottest thermal zone.", registry=r)
        self.throttled = Gauge(
            "lanai_throttled", "1 while the firmware reports this throttling condition (Raspberry Pi).",
            ["condition"], registry=r,
        )  # fmt: skip
        self.admission = Gauge(
            "lanai_admission_ratio", "Share of its capacity the box admits now (below 1 when hot; 0 past the "
            "hard limit).", registry=r,
        )  # fmt: skip
        self.alerts = Counter(
            "lanai_alerts", "Device alerts begun, by kind (high_temperature, throttling, under_voltage, memory, "
            "disk).", ["kind"], registry=r,
        )  # fmt: skip
        self.alert_active = Gauge("lanai_alert_active", "1 while a device alert lasts, by kind.", ["kind"], registry=r)
        self.memory_available = Gauge("lanai_memory_available_bytes", "Memory free for use on the box.", registry=r)
        self.disk_free = Gauge("lanai_store_disk_free_bytes", "Free space where the model store lives.", registry=r)
        self.cpu_limit = Gauge(
            "lanai_cpu_limit_cores", "CPUs the cgroup grants (Docker --cpus, Kubernetes limits); absent without "
            "a quota.", registry=r,
        )  # fmt: skip
        self.unclean_exits = Gauge(
            "lanai_unclean_exits", "Runs of the server in the last 24 hours that ended without a clean shutdown "
            "(crashes, kills, power cuts).", registry=r,
        )  # fmt: skip
        self.update_state = Gauge(
            "lanai_update_state", "1 for the state of a followed model's update now (idle, pulling, verifying, "
            "activating, watching, rolled_back).", ["model", "state"], registry=r,
        )  # fmt: skip
        self.demand_loads = Counter(
            "lanai_demand_loads", "Models loaded because a request asked for them, by model.", ["model"], registry=r
        )
        self.demand_unloads = Counter(
            "lanai_demand_unloads", "On-demand models unloaded, by model and why (idle, evicted).", ["model", "reason"],
            registry=r,
        )  # fmt: skip
        self.rollbacks = Counter(
            "lanai_rollbacks", "Automatic rollbacks of a new model version, by model.", ["model"], registry=r
        )
        for state in HEALTH_STATES:
            self.health_state.labels(state).set(0)
        for condition in THROTTLE_CONDITIONS:
            self.throttled.labels(condition).set(0)
        for kind in ALERT_KINDS:
            self.alerts.labels(kind)
            self.alert_active.labels(kind).set(0)

    def observe_generation(self, model: str, usage: Usage) -> None:
        self.time_to_first_token.labels(model).observe(usage.time_to_first_token_s)
        self.generation_queue_seconds.labels(model).observe(usage.queue_s)
        if usage.tokens_per_second:
            self.tokens_per_second.labels(model).observe(usage.tokens_per_second)
        self.prompt_tokens.labels(model).inc(usage.prompt_tokens)
        self.completion_tokens.labels(model).inc(usage.completion_tokens)

    def observe_batch(self, model: str, stats: BatchStats) -> None:
        children = self._batch_children.get(model)
        if children is None:  # labels() builds a key and takes a lock on every call: once per model
            children = self._batch_children[model] = (
                self.batch_size.labels(model),
                self.compute_seconds.labels(model),
                self.queue_seconds.labels(model),
            )
        batch_size, compute, queue = children
        batch_size.observe(stats.batch_size)
        compute.observe(stats.compute_ns / 1e9)
        for ns in stats.queue_ns:
            queue.observe(ns / 1e9)

    def model_loaded(self, model: str, version: str, backend: str, provider: str, digest: str = "") -> None:
        self.model_unloaded(model)
        self.model_info.labels(model, version, backend, provider, digest).set(1)

    def set_update_state(self, model: str, state: str) -> None:
        for known in UPDATE_STATES:
            self.update_state.labels(model, known).set(1 if known == state else 0)

    def set_state(self, state: str) -> None:
        for known in HEALTH_STATES:
            self.health_state.labels(known).set(1 if known == state else 0)

    def observe_device(self, condition: Condition) -> None:
        if condition.temperature_c is not None:
            self.temperature.set(condition.temperature_c)
        for known in THROTTLE_CONDITIONS:
            self.throttled.labels(known).set(1 if known in (condition.throttled or ()) else 0)
        self.admission.set(condition.admission)
        for kind in ALERT_KINDS:
            self.alert_active.labels(kind).set(1 if kind in condition.alerts else 0)
        self.memory_available.set(condition.memory_available_mb * 2**20)
        if condition.disk_free_mb is not None:
            self.disk_free.set(condition.disk_free_mb * 2**20)
        if condition.cpu_limit is not None:
            self.cpu_limit.set(condition.cpu_limit)

    def model_unloaded(self, model: str) -> None:
        self._batch_children.pop(model, None)
        for labels in [s.labels for m in self.model_info.collect() for s in m.samples]:
            if labels.get("model") == model:
                names = ("model", "version", "backend", "provider", "digest")
                self.model_info.remove(*(labels[name] for name in names))

    def render(self) -> bytes:
        return generate_latest(self.registry)
