"""The status snapshot with its recent history: what ``GET /v1/status`` answers for the box's web console."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lanai.protocol.health import DeviceStatus, FailedModel
from lanai.protocol.wire import Wire, doc

__all__ = ["StatusReport", "DeviceHistory", "ModelActivity", "ModelHistory", "LoggedError"]


@dataclass(frozen=True)
class DeviceHistory(Wire):
    """The box, one entry per sample (every ``interval_s``), oldest first; every list is as long as ``t``."""

    t: tuple[float, ...] = doc("When each sample was taken, Unix seconds.")
    cpu_percent: tuple[float, ...] = doc("CPU use over the sample's interval, 0–100.")
    memory_used_mb: tuple[float, ...] = doc("Memory in use on the box (total less available).")
    rss_mb: tuple[float, ...] = doc("lanai's resident memory.")
    temperature_c: tuple[float | None, ...] = doc("The hottest thermal zone; null without a sensor.")
    throttled: tuple[bool, ...] = doc("Whether a Raspberry Pi's firmware reported any throttling condition.")


@dataclass(frozen=True)
class ModelHistory(Wire):
    """A model's requests, one entry per sample since it was loaded, oldest first; lists as long as ``t``."""

    t: tuple[float, ...] = doc("When each sample was taken, Unix seconds.")
    requests_per_s: tuple[float, ...] = doc("Requests per second over the sample's interval.")
    p50_ms: tuple[float | None, ...] = doc("Median latency of the interval's answered requests; null without any.")
    p95_ms: tuple[float | None, ...] = doc("95th percentile of the same; null without any.")


@dataclass(frozen=True)
class ModelActivity(Wire):
    """A loaded model, and what its requests came to lately."""

    name: str = doc("The model's name.")
    version: str = doc("The version serving.")
    task: str = doc("What it does, e.g. classify or chat.")
    backend: str = doc("The runtime, e.g. onnx or llamacpp.")
    execution_provider: str = doc("Where it runs, e.g. CPUExecutionProvider.")
    queue_depth: int = doc("Requests waiting for this model now.")
    requests_per_s: float = doc("Requests per second over the last minute.")
    p50_ms: float | None = doc("Median latency over the last 5 minutes (answered requests); null without any.")
    p95_ms: float | None = doc("95th percentile latency over the last 5 minutes; null without any.")
    requests_5m: int = doc("Requests in the last 5 minutes (a client's bad input and refusals not counted).")
    failures_5m: int = doc("Of those, the ones that failed on the server's side.")
    history: ModelHistory = doc("The last 15 minutes, per sample.")


@dataclass(frozen=True)
class LoggedError(Wire):
    """A warning or error the server logged."""

    time: float = doc("When, Unix seconds.")
    level: Literal["WARNING", "ERROR", "CRITICAL"] = doc("How bad.")
    logger: str = doc("Which part of the server logged it, e.g. lanai.dataplane.plane.")
    message: str = doc("The message, on one line, at most 500 characters.")


@dataclass(frozen=True)
class StatusReport(Wire):
    """The box now and over the last 15 minutes, from lanai's own figures (no Prometheus needed)."""

    status: Literal["healthy", "degraded", "unavailable"] = doc("As in /health.")
    reason: str | None = doc("Why it is not healthy; null when it is.")
    version: str = doc("The lanai version.")
    uptime_s: float = doc("Seconds since the server started.")
    interval_s: float = doc("Seconds between samples (setting status_interval_s).")
    device: DeviceStatus = doc("The box now, as in /health.")
    history: DeviceHistory = doc("The box over the last 15 minutes.")
    models: tuple[ModelActivity, ...] = doc("The loaded models.")
    failed: tuple[FailedModel, ...] = doc("Models whose active version did not load.")
    errors: tuple[LoggedError, ...] = doc("The last 50 warnings and errors logged, oldest first.")
