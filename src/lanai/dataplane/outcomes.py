"""What a model version's requests came to: how many failed on the server's side and how long they took,
over its last few thousand requests. After a new version is swapped in, the fleet's watch compares its
figures with those its predecessor had (``lanai.fleet.follow``)."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from lanai.errors import (
    BadInput,
    ModelNotFound,
    NotReady,
    Overloaded,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
)

__all__ = ["Outcomes", "OutcomeSummary", "is_failure"]

_CLIENTS_OR_LOAD = (BadInput, ModelNotFound, NotReady, Overloaded, PermissionDenied, RateLimited, Unauthenticated)


def is_failure(exc: BaseException) -> bool:
    """Whether an error is the model's (or the server's) doing, rather than the client's or the load's."""
    return not isinstance(exc, _CLIENTS_OR_LOAD)


@dataclass(frozen=True)
class OutcomeSummary:
    requests: int
    failures: int
    p50_s: float | None
    p95_s: float | None

    @property
    def failure_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


class Outcomes:
    def __init__(self, version: str, keep: int = 4000) -> None:
        self.version = version
        self.since = time.monotonic()
        self._seen: deque[tuple[float, bool, float]] = deque(maxlen=keep)

    def record(self, ok: bool, seconds: float) -> None:
        self._seen.append((time.monotonic(), ok, seconds))

    def rows_since(self, t: float) -> list[tuple[float, bool, float]]:
        """The rows (monotonic time, ok, seconds) recorded after ``t``, oldest first. Read from the newest
        end, so it costs the rows returned, not the rows kept; call it on the event loop that records."""
        rows = []
        for row in reversed(self._seen):
            if row[0] <= t:
                break
            rows.append(row)
        rows.reverse()
        return rows

    def summary(self, since: float | None = None) -> OutcomeSummary:
        rows = [row for row in list(self._seen) if since is None or row[0] >= since]
        latencies = sorted(seconds for _, ok, seconds in rows if ok)

        def quantile(q: float) -> float | None:
            return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else None

        return OutcomeSummary(len(rows), sum(1 for _, ok, _ in rows if not ok), quantile(0.5), quantile(0.95))
