"""What a benchmark measured: counts, throughput and latency percentiles, as JSON or a small table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["BenchResult", "LatencyStats", "percentiles", "summarize"]


def percentiles(values: npt.ArrayLike, qs: tuple[float, ...]) -> list[float]:
    """The ``qs`` percentiles (0 to 100) of ``values`` by linear interpolation between closest ranks.

    For sorted values ``x[0] ≤ … ≤ x[n-1]`` the ``q``-th percentile is at rank ``h = (n - 1)·q/100``:
    ``x[⌊h⌋] + (h - ⌊h⌋)·(x[⌊h⌋+1] - x[⌊h⌋])`` (numpy's default, Hyndman & Fan type 7). So for
    1, 2, …, 100 the p50 is 50.5, the p95 is 95.05 and the p99 is 99.01; p0 is the min and p100 the max.
    """
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        raise ValueError("percentiles of no values are undefined")
    return [float(v) for v in np.percentile(data, qs, method="linear")]


@dataclass(frozen=True)
class LatencyStats:
    """Latency of the successful requests, in milliseconds."""

    min: float
    mean: float
    p50: float
    p95: float
    p99: float
    max: float

    def to_dict(self) -> dict[str, float]:
        return {k: round(getattr(self, k), 4) for k in ("min", "mean", "p50", "p95", "p99", "max")}


def summarize(latencies_ns: npt.ArrayLike) -> LatencyStats | None:
    """Latency statistics of integer nanosecond samples (any buffer or sequence); None for no samples."""
    ms = np.asarray(latencies_ns, dtype=np.float64) / 1e6
    if ms.size == 0:
        return None
    p50, p95, p99 = percentiles(ms, (50, 95, 99))
    return LatencyStats(float(ms.min()), float(ms.mean()), p50, p95, p99, float(ms.max()))


@dataclass(frozen=True)
class BenchResult:
    """The outcome of one benchmark run.

    ``ok`` counts 2xx responses; ``errors`` counts everything else by kind: the status code as a string
    (``"503"``), ``"timeout"``, ``"connection"`` (refused, not
    connected within the timeout, reset, or closed mid-response) or ``"protocol"``
    (an unreadable response). ``duration`` is the measured time in seconds, warm-up excluded.
    ``latency`` covers successful requests only and is None when there were none. A timed run also
    says how many requests were still unanswered when it ended (``unfinished``, whenever they were sent)
    and how long the oldest had waited (``oldest_unfinished_ms``): they are in no percentile, so a server
    that leaves some connections waiting while it answers others shows it here, not in its p99.
    """

    url: str
    path: str
    concurrency: int
    duration: float
    ok: int
    errors: Mapping[str, int] = field(default_factory=dict)
    latency: LatencyStats | None = None
    unfinished: int = 0
    oldest_unfinished_ms: float = 0.0

    @property
    def error_count(self) -> int:
        """All failed requests, whatever the kind."""
        return sum(self.errors.values())

    @property
    def requests(self) -> int:
        """All measured requests: successes and errors."""
        return self.ok + self.error_count

    @property
    def throughput(self) -> float:
        """Successful requests per second."""
        return self.ok / self.duration if self.duration > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every figure (latencies in ms, ``latency`` null without successes)."""
        return {
            "url": self.url,
            "path": self.path,
            "concurrency": self.concurrency,
            "duration_s": round(self.duration, 6),
            "requests": self.requests,
            "ok": self.ok,
            "errors": dict(sorted(self.errors.items())),
            "error_count": self.error_count,
            "throughput_rps": round(self.throughput, 3),
            "latency_ms": None if self.latency is None else self.latency.to_dict(),
            "unfinished": self.unfinished,
            "oldest_unfinished_ms": round(self.oldest_unfinished_ms, 3),
        }

    def format_text(self) -> str:
        """A compact human-readable table."""
        errors = ", ".join(f"{kind}: {n:,}" for kind, n in sorted(self.errors.items()))
        lines = [
            f"target       {self.url}{self.path}  (concurrency {self.concurrency})",
            f"requests     {self.ok:,} ok, {self.error_count:,} errors" + (f" ({errors})" if errors else ""),
            f"duration     {self.duration:.2f} s",
            f"throughput   {self.throughput:,.1f} req/s",
        ]
        if self.latency is None:
            lines.append("latency      - (no successful requests)")
        else:
            lat = self.latency
            lines.append("latency ms   min      mean     p50      p95      p99      max")
            values = (lat.min, lat.mean, lat.p50, lat.p95, lat.p99, lat.max)
            lines.append("             " + " ".join(f"{v:<8.2f}" for v in values).rstrip())
        if self.unfinished:
            oldest = f"{self.oldest_unfinished_ms:,.1f} ms"
            lines.append(f"unanswered   {self.unfinished:,} at the end, the oldest sent {oldest} before")
        return "\n".join(lines)
