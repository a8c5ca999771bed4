"""What the box itself is doing: CPU, memory, temperature, throttling. None where there is no sensor."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import psutil

from lanai.protocol.health import DeviceStatus

__all__ = ["DeviceStatus", "read_device"]

_THERMAL = Path("/sys/class/thermal")
# Raspberry Pi firmware exposes the same bits as `vcgencmd get_throttled` here.
_PI_THROTTLED = Path("/sys/devices/platform/soc/soc:firmware/get_throttled")
_THROTTLE_BITS = {
    0: "under-voltage",
    1: "arm frequency capped",
    2: "throttled",
    3: "soft temperature limit",
}


def _temperature() -> float | None:
    """The hottest thermal zone, in °C (SoC boards expose one per sensor)."""
    readings = []
    for zone in _THERMAL.glob("thermal_zone*/temp"):
        try:
            readings.append(int(zone.read_text().strip()) / 1000.0)
        except (OSError, ValueError):
            continue
    return max(readings) if readings else None


def _throttled() -> list[str] | None:
    """Active throttling conditions on a Raspberry Pi, [] when none; None on other devices."""
    try:
        bits = int(_PI_THROTTLED.read_text().strip(), 16)
    except (OSError, ValueError):
        return None
    return [name for bit, name in _THROTTLE_BITS.items() if bits & (1 << bit)]


def read_device(process: psutil.Process | None = None) -> DeviceStatus:
    process = process or psutil.Process()
    memory = psutil.virtual_memory()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return DeviceStatus(
        machine=platform.machine(),
        cpu_count=os.cpu_count() or 1,
        cpu_percent=psutil.cpu_percent(interval=None),
        load_average=load,
        memory_total_mb=round(memory.total / 2**20, 1),
        memory_available_mb=round(memory.available / 2**20, 1),
        process_rss_mb=round(process.memory_info().rss / 2**20, 1),
        temperature_c=_temperature(),
        throttled=_throttled(),
    )
