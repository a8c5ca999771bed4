"""A one-line progress bar on stderr for a running benchmark (no dependencies).

The load generator hands a :class:`Snapshot` to its ``progress`` callback at most ten times a second,
and once more, with ``finished=True``, at the end. :class:`ProgressBar` is such a callback.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from time import perf_counter
from typing import TextIO

__all__ = ["ProgressBar", "Snapshot"]

_WIDTH = 20


@dataclass(frozen=True)
class Snapshot:
    """The state of a run. ``elapsed`` counts from the end of warm-up (0 while ``warming_up``)."""

    elapsed: float
    ok: int
    errors: int
    warming_up: bool = False
    finished: bool = False
    total_seconds: float | None = None  # set in duration mode
    total_requests: int | None = None  # set in requests mode

    @property
    def requests(self) -> int:
        """Requests completed so far (successes and errors)."""
        return self.ok + self.errors

    @property
    def fraction(self) -> float:
        """How far the run is, from 0 to 1."""
        if self.finished:
            return 1.0
        if self.total_seconds:
            return min(1.0, self.elapsed / self.total_seconds)
        if self.total_requests:
            return min(1.0, self.requests / self.total_requests)
        return 0.0


class ProgressBar:
    """Draws snapshots as ``[#####-----] 3.1/10.0 s  1,234 req  402 req/s  0 err`` on one line.

    Draws nothing when ``enabled`` is false or ``stream`` (stderr by default) is not a terminal.
    """

    def __init__(self, stream: TextIO | None = None, *, enabled: bool = True, min_interval: float = 0.1) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.active = enabled and self.stream.isatty()
        self.min_interval = min_interval
        self._last_draw = float("-inf")
        self._last: tuple[float, int] | None = None  # (elapsed, requests) of the previous snapshot
        self._rate = 0.0

    def __call__(self, snapshot: Snapshot) -> None:
        if not self.active:
            return
        now = perf_counter()
        if not snapshot.finished and now - self._last_draw < self.min_interval:
            return
        self._last_draw = now
        self._update_rate(snapshot)
        end = "\n" if snapshot.finished else ""
        self.stream.write("\r" + self.render(snapshot) + "\033[K" + end)
        self.stream.flush()

    def render(self, snapshot: Snapshot) -> str:
        """The bar's text for ``snapshot`` (without cursor control)."""
        filled = round(snapshot.fraction * _WIDTH)
        bar = "[" + "#" * filled + "-" * (_WIDTH - filled) + "]"
        if snapshot.warming_up:
            return f"{bar} warming up…"
        if snapshot.total_seconds is not None:
            where = f"{snapshot.elapsed:.1f}/{snapshot.total_seconds:.1f} s"
        else:
            where = f"{snapshot.requests:,}/{snapshot.total_requests or 0:,} req  {snapshot.elapsed:.1f} s"
        return f"{bar} {where}  {snapshot.ok:,} ok  {self._rate:,.0f} req/s  {snapshot.errors:,} err"

    def _update_rate(self, snapshot: Snapshot) -> None:
        if snapshot.warming_up:
            self._last = None
            return
        if snapshot.finished:
            self._rate = snapshot.requests / snapshot.elapsed if snapshot.elapsed > 0 else 0.0
            return
        if self._last is not None and snapshot.elapsed > self._last[0]:
            instant = (snapshot.requests - self._last[1]) / (snapshot.elapsed - self._last[0])
            self._rate = instant if self._rate == 0.0 else 0.7 * self._rate + 0.3 * instant
        self._last = (snapshot.elapsed, snapshot.requests)
