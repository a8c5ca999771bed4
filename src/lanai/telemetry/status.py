"""The box's recent history for its web console (``GET /v1/status``), from lanai's own figures.

:class:`StatusRecorder` samples every ``interval_s`` on the data plane's event loop: the device (CPU,
memory in use, lanai's RSS, temperature, throttling) and, per model, the requests its ``Outcomes`` recorded
since the sample before (a count, the failures, and the latencies in a histogram of fixed log-spaced
buckets). It keeps 15 minutes. A percentile over a window comes from the merged histograms of the window's
samples, never from an average of percentiles. Nothing is added to a request's path: ``Outcomes`` already
records every request, and the recorder reads what it recorded.

:class:`RecentErrors` is a logging handler that keeps the last 50 warnings and errors, for the same page.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import psutil

from lanai.errors import ConfigError
from lanai.protocol.health import HealthReport, ModelStatus
from lanai.protocol.status import DeviceHistory, LoggedError, ModelActivity, ModelHistory, StatusReport
from lanai.telemetry.monitor import Condition

__all__ = ["EDGES", "LatencyHistogram", "RecentErrors", "StatusRecorder"]

log = logging.getLogger(__name__)

_PER_DECADE = 10
EDGES: tuple[float, ...] = tuple(1e-4 * 10 ** (i / _PER_DECADE) for i in range(6 * _PER_DECADE + 1))
"""Upper bounds of the latency buckets in seconds: 0.1 ms to 100 s, ten a decade (each about 26 % wider
than the one before, so a percentile read from them is that close); one more bucket holds what is longer."""
_STEP = 10 ** (1 / _PER_DECADE)

RATE_WINDOW_S = 60.0
"""``requests_per_s`` is over the last minute."""
LATENCY_WINDOW_S = 300.0
"""``p50_ms``, ``p95_ms``, ``requests_5m`` and ``failures_5m`` are over the last 5 minutes."""


class LatencyHistogram:
    """Counts of latencies per bucket of :data:`EDGES` (and one past the last)."""

    __slots__ = ("counts",)

    def __init__(self, counts: Sequence[int] | None = None) -> None:
        self.counts = list(counts) if counts is not None else [0] * (len(EDGES) + 1)

    def add(self, seconds: float) -> None:
        self.counts[bisect_left(EDGES, seconds)] += 1

    @property
    def count(self) -> int:
        return sum(self.counts)

    @classmethod
    def merged(cls, histograms: Iterable[LatencyHistogram]) -> LatencyHistogram:
        out = cls()
        for histogram in histograms:
            for i, n in enumerate(histogram.counts):
                if n:
                    out.counts[i] += n
        return out

    def quantile(self, q: float) -> float | None:
        """The latency (seconds) under which a share ``q`` of the counted ones fall, interpolated within
        its bucket on the log scale; None when nothing is counted. Past the last edge: the last edge."""
        total = self.count
        if not total:
            return None
        rank, seen = q * total, 0
        for i, n in enumerate(self.counts):
            if n and seen + n >= rank:
                if i == len(EDGES):
                    return EDGES[-1]
                high = EDGES[i]
                low = high / _STEP
                return low * _STEP ** ((rank - seen) / n)
            seen += n
        return EDGES[-1]


class RowSource(Protocol):
    """What the recorder reads a model's requests from (``dataplane.outcomes.Outcomes``)."""

    def rows_since(self, t: float) -> Sequence[tuple[float, bool, float]]: ...


@dataclass(frozen=True)
class DeviceSample:
    cpu_percent: float
    memory_used_mb: float
    rss_mb: float
    temperature_c: float | None
    throttled: bool


@dataclass(frozen=True)
class ModelSample:
    """A model's requests over one sample's interval."""

    requests: int
    failures: int
    latency: LatencyHistogram | None
    """The answered requests' latencies; None when there were none."""
    p50_s: float | None
    p95_s: float | None

    @classmethod
    def of(cls, rows: Sequence[tuple[float, bool, float]]) -> ModelSample:
        histogram = LatencyHistogram()
        failures = 0
        for _, ok, seconds in rows:
            if ok:
                histogram.add(seconds)
            else:
                failures += 1
        if len(rows) == failures:
            return cls(len(rows), failures, None, None, None)
        return cls(len(rows), failures, histogram, histogram.quantile(0.5), histogram.quantile(0.95))


@dataclass(frozen=True)
class Sample:
    t: float
    """Unix seconds."""
    at: float
    """Monotonic seconds: the end of the interval it covers."""
    span_s: float
    """How long that interval was."""
    device: DeviceSample | None
    """None only for the interval not sampled yet, which a report counts in too."""
    models: dict[str, ModelSample]


class StatusRecorder:
    """Samples the box and the models' requests every ``interval_s`` on the event loop it is started on;
    keeps ``keep_s`` of samples. ``condition`` gives the device monitor's latest reading, ``sources`` each
    loaded model's outcomes."""

    def __init__(
        self,
        interval_s: float,
        condition: Callable[[], Condition],
        sources: Callable[[], Mapping[str, RowSource]],
        *,
        keep_s: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not interval_s > 0:
            raise ConfigError(f"status_interval_s is {interval_s}; it must be above 0.", hint="leave it at 5 (s).")
        self.interval_s = interval_s
        self.samples: deque[Sample] = deque(maxlen=max(1, math.ceil(keep_s / interval_s)))
        self._condition = condition
        self._sources = sources
        self._clock = clock
        self._last = clock()
        self._cpu = _CpuMeter()
        self._process = psutil.Process()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Take a sample now (so a report is never empty), then one every ``interval_s``."""
        self.sample()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="lanai-status")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                self.sample()
            except Exception:  # a sensor or a model that misbehaves must not end the history
                log.exception("sampling the status failed")

    def sample(self) -> Sample:
        """Read the device and the requests since the last sample now, and keep them."""
        sample = self._interval(self._clock(), self._read_device())
        self.samples.append(sample)
        self._last = sample.at
        return sample

    def _interval(self, now: float, device: DeviceSample | None) -> Sample:
        models = {name: ModelSample.of(source.rows_since(self._last)) for name, source in self._sources().items()}
        return Sample(time.time(), now, now - self._last, device, models)

    def _read_device(self) -> DeviceSample:
        condition = self._condition()
        memory = psutil.virtual_memory()
        return DeviceSample(
            cpu_percent=self._cpu.percent(),
            memory_used_mb=round((memory.total - memory.available) / 2**20, 1),
            rss_mb=round(self._process.memory_info().rss / 2**20, 1),
            temperature_c=condition.temperature_c,
            throttled=bool(condition.throttled),
        )

    def report(self, health: HealthReport, errors: Sequence[LoggedError]) -> StatusReport:
        """The status page: ``health`` (now) with the history kept and the windows' figures, which count
        the requests since the last sample too."""
        now = self._clock()
        samples = [*self.samples, self._interval(now, None)]
        kept = samples[:-1]
        history = DeviceHistory(
            t=tuple(s.t for s in kept),
            cpu_percent=tuple(s.device.cpu_percent if s.device else 0.0 for s in kept),
            memory_used_mb=tuple(s.device.memory_used_mb if s.device else 0.0 for s in kept),
            rss_mb=tuple(s.device.rss_mb if s.device else 0.0 for s in kept),
            temperature_c=tuple(s.device.temperature_c if s.device else None for s in kept),
            throttled=tuple(s.device.throttled if s.device else False for s in kept),
        )
        models = tuple(_activity(model, samples, now) for model in health.models)
        summary = health.summary()
        return StatusReport(
            health.status, summary.reason, health.version, health.uptime_s, self.interval_s, health.device,
            history, models, health.failed, tuple(errors),
        )  # fmt: skip


def _activity(model: ModelStatus, samples: Sequence[Sample], now: float) -> ModelActivity:
    name = model.name
    rate_requests, _, _, rate_span = _window(samples, name, now, RATE_WINDOW_S)
    requests, failures, latency, _ = _window(samples, name, now, LATENCY_WINDOW_S)
    mine = [(s, s.models[name]) for s in samples[:-1] if name in s.models]
    history = ModelHistory(
        t=tuple(s.t for s, _ in mine),
        requests_per_s=tuple(round(m.requests / s.span_s, 3) if s.span_s > 0 else 0.0 for s, m in mine),
        p50_ms=tuple(_ms(m.p50_s) for _, m in mine),
        p95_ms=tuple(_ms(m.p95_s) for _, m in mine),
    )
    return ModelActivity(
        name, model.version, model.task, model.backend, model.execution_provider, model.queue_depth,
        requests_per_s=round(rate_requests / rate_span, 3) if rate_span > 0 else 0.0,
        p50_ms=_ms(latency.quantile(0.5)), p95_ms=_ms(latency.quantile(0.95)),
        requests_5m=requests, failures_5m=failures, history=history,
    )  # fmt: skip


def _window(
    samples: Sequence[Sample], name: str, now: float, window_s: float
) -> tuple[int, int, LatencyHistogram, float]:
    """Requests, failures and merged latencies of the samples (of ``name``) that end within the last
    ``window_s``, and the time they cover (from the start of the oldest: a sample is counted whole)."""
    inside = [s for s in samples if s.at > now - window_s and name in s.models]
    if not inside:
        return 0, 0, LatencyHistogram(), 0.0
    figures = [s.models[name] for s in inside]
    latency = LatencyHistogram.merged(f.latency for f in figures if f.latency is not None)
    span = now - (inside[0].at - inside[0].span_s)
    return sum(f.requests for f in figures), sum(f.failures for f in figures), latency, span


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


class _CpuMeter:
    """CPU use between calls, of its own (``psutil.cpu_percent()`` keeps one shared state, which /health
    reads too)."""

    def __init__(self) -> None:
        self._before = psutil.cpu_times()

    def percent(self) -> float:
        now = psutil.cpu_times()
        busy, total = _busy(now) - _busy(self._before), sum(now) - sum(self._before)
        self._before = now
        return round(min(100.0, max(0.0, 100.0 * busy / total)), 1) if total > 0 else 0.0


def _busy(times: Any) -> float:
    return float(sum(times)) - times.idle - getattr(times, "iowait", 0.0)


# -- recent errors --------------------------------------------------------------------------------------

_MESSAGE_CHARS = 500


class RecentErrors(logging.Handler):
    """Keeps the last ``keep`` warnings and errors logged by lanai (and uvicorn), for the status page."""

    LOGGERS = ("lanai", "uvicorn.error")

    def __init__(self, keep: int = 50) -> None:
        super().__init__(logging.WARNING)
        self._records: deque[LoggedError] = deque(maxlen=keep)
        self._installed = False

    def install(self) -> None:
        """Attach to lanai's and uvicorn's loggers (once; a second call does nothing)."""
        if not self._installed:
            for name in self.LOGGERS:
                logging.getLogger(name).addHandler(self)
            self._installed = True

    def remove(self) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).removeHandler(self)
        self._installed = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                error = record.exc_info[1]
                message += f" ({type(error).__name__}: {error})"
            self._records.append(LoggedError(record.created, _level(record.levelno), record.name, _one_line(message)))
        except Exception:
            self.handleError(record)

    def records(self) -> tuple[LoggedError, ...]:
        """Oldest first."""
        return tuple(self._records)


def _level(levelno: int) -> Literal["WARNING", "ERROR", "CRITICAL"]:
    if levelno >= logging.CRITICAL:
        return "CRITICAL"
    return "ERROR" if levelno >= logging.ERROR else "WARNING"


def _one_line(message: str) -> str:
    line = " ".join(message.split())
    return line if len(line) <= _MESSAGE_CHARS else line[: _MESSAGE_CHARS - 1] + "…"
