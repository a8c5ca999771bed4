"""The box's own condition, sampled on a background thread: temperature, Raspberry Pi throttling, the CPU
the cgroup grants, memory and disk. From it, how much work the box should admit.

Levels: ``normal``; ``soft`` past ``thermal_soft_c`` or while the firmware throttles (admission falls
from 1 at the soft limit to 0.25 just below the hard one); ``hard`` past ``thermal_hard_c`` (admission 0:
requests get 503 with Retry-After, readiness says degraded). A level is left only once the temperature is
``hysteresis_c`` below its limit, so a box at the edge does not flap. Alerts (high temperature,
throttling, under-voltage, low memory, low disk) are logged once when they begin and once when they end,
and counted in ``lanai_alerts_total``.

Sensors are read from ``root`` (``/`` on a real box; a test passes a folder laid out the same way):
``sys/class/thermal/thermal_zone*/temp`` (millidegrees), ``sys/devices/platform/soc/soc:firmware/
get_throttled`` (the bits ``vcgencmd get_throttled`` prints) and ``sys/fs/cgroup/cpu.max``.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import psutil

from lanai.telemetry.cpus import cpu_quota

__all__ = ["DeviceMonitor", "Condition", "Level", "ThermalLimits", "cgroup_cpus"]

log = logging.getLogger(__name__)

Level = Literal["normal", "soft", "hard"]

_THROTTLE_BITS = {0: "under-voltage", 1: "arm frequency capped", 2: "throttled", 3: "soft temperature limit"}
_FLOOR = 0.25
"""Admission just below the hard limit: the box still serves, a quarter as much."""


@dataclass(frozen=True)
class ThermalLimits:
    soft_c: float = 75.0
    hard_c: float = 82.0
    hysteresis_c: float = 3.0
    min_memory_mb: float = 150.0
    min_disk_mb: float = 500.0


@dataclass(frozen=True)
class Condition:
    """One sample of the box, and what follows from it."""

    level: Level = "normal"
    admission: float = 1.0
    """The share of its normal capacity the box should admit now, 0–1."""
    temperature_c: float | None = None
    throttled: tuple[str, ...] | None = None
    """Throttling conditions active now (Raspberry Pi firmware); None where the firmware reports none."""
    cpu_limit: float | None = None
    """CPUs the cgroup grants (Docker --cpus, k8s limits), None without a quota."""
    memory_available_mb: float = 0.0
    disk_free_mb: float | None = None
    alerts: tuple[str, ...] = field(default=())
    """Active alert kinds: high_temperature, throttling, under_voltage, memory, disk."""

    def reason(self) -> str | None:
        """Why the box admits less than all it can, for readiness and logs; None at normal."""
        if self.level == "normal":
            return None
        what = f"temperature {self.temperature_c:.1f} °C" if self.temperature_c is not None else "the firmware"
        if self.throttled:
            what += f" ({', '.join(self.throttled)})"
        limit = "past the hard limit" if self.level == "hard" else "past the soft limit"
        return f"{what} is {limit}: admitting {self.admission:.0%}"


def cgroup_cpus(root: Path = Path("/")) -> float | None:
    """CPUs granted by the cgroup quota now, or None (``telemetry.cpus``: the process's own cgroup and
    those above it, v2 or v1; read afresh at every sample, as a quota can change while lanai runs)."""
    return cpu_quota(root)


class DeviceMonitor:
    """Samples the box every ``interval`` seconds on a daemon thread; ``condition`` is the latest sample.
    From that thread: ``on_sample(condition)`` after every sample, ``on_change(condition)`` when the level,
    the alerts or the admission change, ``on_alert(kind)`` when an alert begins."""

    def __init__(
        self,
        limits: ThermalLimits | None = None,
        *,
        root: Path = Path("/"),
        store: Path | None = None,
        interval: float = 5.0,
        on_change: Callable[[Condition], None] | None = None,
        on_sample: Callable[[Condition], None] | None = None,
        on_alert: Callable[[str], None] | None = None,
    ) -> None:
        self.limits = limits or ThermalLimits()
        self.root = root
        self.store = store
        self.interval = interval
        self._on_change = on_change
        self._on_sample = on_sample
        self._on_alert = on_alert
        self.condition = Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.sample()
        self._thread = threading.Thread(target=self._run, name="lanai-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval + 1)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except Exception:  # a sensor that misbehaves must not end the monitoring
                log.exception("reading the device's sensors failed")

    def sample(self) -> Condition:
        """Read the sensors now; update ``condition`` and report changes."""
        before = self.condition
        temperature = self._temperature()
        reported = self._throttled()
        throttled = reported or []
        level = self._level(before.level, temperature, throttled)
        memory = psutil.virtual_memory().available / 2**20
        disk = shutil.disk_usage(self.store).free / 2**20 if self.store is not None and self.store.exists() else None
        alerts = []
        if temperature is not None and temperature >= self.limits.soft_c:
            alerts.append("high_temperature")
        if any(t in ("throttled", "arm frequency capped", "soft temperature limit") for t in throttled):
            alerts.append("throttling")
        if "under-voltage" in throttled:
            alerts.append("under_voltage")
        if memory < self.limits.min_memory_mb:
            alerts.append("memory")
        if disk is not None and disk < self.limits.min_disk_mb:
            alerts.append("disk")
        now = Condition(level, self._admission(level, temperature), temperature,
                        None if reported is None else tuple(reported),
                        cgroup_cpus(self.root), round(memory, 1), None if disk is None else round(disk, 1),
                        tuple(alerts))  # fmt: skip
        self.condition = now
        for kind in now.alerts:
            if kind not in before.alerts:
                log.warning("alert %s began: %s", kind, _describe(kind, now))
                if self._on_alert is not None:
                    self._on_alert(kind)
        for kind in before.alerts:
            if kind not in now.alerts:
                log.info("alert %s ended", kind)
        if self._on_sample is not None:
            self._on_sample(now)
        if (now.level, now.alerts) != (before.level, before.alerts) or abs(now.admission - before.admission) > 0.05:
            if now.level != before.level:
                log.warning("device: %s", now.reason() or f"back to normal ({now.temperature_c} °C)")
            if self._on_change is not None:
                self._on_change(now)
        return now

    def _level(self, previous: Level, temperature: float | None, throttled: list[str]) -> Level:
        limits = self.limits
        hot = temperature if temperature is not None else float("-inf")
        if hot >= limits.hard_c or (previous == "hard" and hot > limits.hard_c - limits.hysteresis_c):
            return "hard"
        firmware = any(t in ("throttled", "soft temperature limit") for t in throttled)
        if hot >= limits.soft_c or firmware or (previous != "normal" and hot > limits.soft_c - limits.hysteresis_c):
            return "soft"
        return "normal"

    def _admission(self, level: Level, temperature: float | None) -> float:
        if level == "normal":
            return 1.0
        if level == "hard":
            return 0.0
        limits = self.limits
        if temperature is None or temperature <= limits.soft_c:
            return 0.5  # throttled by the firmware below the soft limit (or cooling off within the hysteresis)
        share = (temperature - limits.soft_c) / max(limits.hard_c - limits.soft_c, 0.1)
        return round(max(_FLOOR, 1.0 - share * (1.0 - _FLOOR)), 3)

    def _temperature(self) -> float | None:
        readings = []
        for zone in (self.root / "sys/class/thermal").glob("thermal_zone*/temp"):
            try:
                readings.append(int(zone.read_text().strip()) / 1000.0)
            except (OSError, ValueError):
                continue
        return max(readings) if readings else None

    def _throttled(self) -> list[str] | None:
        try:
            bits = int((self.root / "sys/devices/platform/soc/soc:firmware/get_throttled").read_text().strip(), 16)
        except (OSError, ValueError):
            return None
        return [name for bit, name in _THROTTLE_BITS.items() if bits & (1 << bit)]


def _describe(kind: str, condition: Condition) -> str:
    if kind == "high_temperature":
        return f"{condition.temperature_c:.1f} °C"
    if kind in ("throttling", "under_voltage"):
        return ", ".join(condition.throttled or ())
    if kind == "memory":
        return f"{condition.memory_available_mb:.0f} MB available"
    return f"{condition.disk_free_mb:.0f} MB free for the store"
