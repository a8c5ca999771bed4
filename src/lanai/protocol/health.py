"""The server's health report: what ``/health`` answers and the client reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lanai.protocol.doctor import DoctorSummary
from lanai.protocol.wire import Wire, doc

__all__ = ["HealthReport", "HealthStatus", "ModelStatus", "FailedModel", "DeviceStatus", "Readiness"]


@dataclass(frozen=True)
class ModelStatus(Wire):
    """A loaded model."""

    name: str = doc("The model's name.")
    version: str = doc("The version serving.")
    task: str = doc("What it does, e.g. classify or chat.")
    backend: str = doc("The runtime, e.g. onnx or llamacpp.")
    execution_provider: str = doc("Where it runs, e.g. CPUExecutionProvider.")
    max_batch_size: int = doc("The largest batch (or, for language models, the requests decoded together).")
    queue_depth: int = doc("Requests waiting for this model.")


@dataclass(frozen=True)
class FailedModel(Wire):
    """A model (or pipeline) that did not load."""

    name: str = doc("Its name.")
    error: str = doc("Why, with a hint.")


@dataclass(frozen=True)
class DeviceStatus(Wire):
    """What the box is doing."""

    machine: str = doc("The CPU architecture.", examples=["aarch64"])
    cpu_count: int = doc(
        "CPUs lanai may use and sizes its instances and threads for: those online, cut to its "
        "CPU affinity and its cgroup's CPU quota."
    )
    cpu_percent: float = doc("CPU use since the last report, 0–100.")
    load_average: tuple[float, float, float] | None = doc("1, 5 and 15 minutes.", minItems=3, maxItems=3)
    memory_total_mb: float = doc("Memory in all.")
    memory_available_mb: float = doc("Memory free for use.")
    process_rss_mb: float = doc("lanai's resident memory.")
    temperature_c: float | None = doc("The hottest thermal zone; null without a sensor.")
    throttled: list[str] | None = doc("Active throttling on a Raspberry Pi; null elsewhere.")
    cpus_online: int | None = doc("CPUs online on the box.", default=None, omit_none=True)
    cpus_affinity: int | None = doc("CPUs lanai's CPU affinity lets it run on.", default=None, omit_none=True)
    cpu_quota: float | None = doc(
        "CPUs' worth of time its cgroup grants (Docker --cpus, k8s limits); null without a quota.", default=None
    )
    cpus_reason: str | None = doc(
        "How cpu_count was found.", default=None, omit_none=True, examples=["1 of 2 CPUs: affinity {0}"]
    )


@dataclass(frozen=True)
class HealthReport(Wire):
    """The server at a glance."""

    status: Literal["healthy", "degraded", "unavailable"] = doc(
        "degraded: a model failed to load or none is loaded; unavailable: starting or draining (HTTP 503)."
    )
    version: str = doc("The lanai version.")
    uptime_s: float = doc("Seconds since the server started.")
    models: tuple[ModelStatus, ...] = doc("The loaded models.")
    failed: tuple[FailedModel, ...] = doc("Models whose active version did not load.")
    runtimes: dict[str, str] = doc("Versions of Python and the runtimes installed.")
    device: DeviceStatus = doc("The box.")
    unclean_exits_24h: int = doc(
        "Runs of the server in the last 24 hours that ended without a clean shutdown (crashes, SIGKILL, power "
        "cuts); three within an hour is a crash loop and makes the status degraded.",
        default=0,
    )
    doctor: DoctorSummary | None = doc(
        "lanai doctor --quick as run at start (setting doctor_at_start); absent when it is off.",
        default=None,
        omit_none=True,
    )

    def summary(self) -> HealthStatus:
        """What a caller without an admin key is told: the state and why, no names or versions."""
        if self.status == "unavailable":
            reason = "starting or draining"
        elif self.failed:
            reason = f"{len(self.failed)} model(s) did not load"
        elif self.status == "degraded" and self.unclean_exits_24h:
            reason = f"restarted after {self.unclean_exits_24h} crash(es) in the last 24 hours"
        elif not self.models:
            reason = "no model is loaded"
        else:
            reason = None
        return HealthStatus(self.status, reason)


@dataclass(frozen=True)
class HealthStatus(Wire):
    """The server's state, as told to a caller without an admin key (load balancers, passers-by)."""

    status: Literal["healthy", "degraded", "unavailable"] = doc("As in the full report.")
    reason: str | None = doc("Why it is not healthy.", default=None, omit_none=True)


@dataclass(frozen=True)
class Readiness(Wire):
    """Whether a load balancer should send this box work now (``GET /health/ready``: 200 only when ready)."""

    state: Literal["loading", "ready", "draining", "degraded"] = doc(
        "loading: models are being loaded; draining: taken out of rotation (lanai drain, or shutting down); "
        "degraded: too hot, no model loaded, or a queue is full."
    )
    reasons: tuple[str, ...] = doc("Why it is not ready (empty when ready).")
    admission: float = doc("Share of its capacity the box admits now: below 1 when hot, 0 past the hard limit.")
    weight: int = doc("The weight, 1–100 %, the agent check gives a load balancer (0 unless ready).")
    maxconn: int = doc("Connections the box should be sent at once, as the agent check says.")
