"""What the box itself is doing, for ``/health``: CPU, memory, and the device monitor's latest reading of
temperature and throttling (``telemetry.monitor``, which owns the sensors), and the CPUs lanai sizes for
(``telemetry.cpus``)."""

from __future__ import annotations

import os
import platform

import psutil

from lanai.protocol.health import DeviceStatus
from lanai.telemetry.cpus import CpuGrant, usable_cpus
from lanai.telemetry.monitor import Condition

__all__ = ["DeviceStatus", "read_device"]


def read_device(
    condition: Condition, process: psutil.Process | None = None, cpus: CpuGrant | None = None
) -> DeviceStatus:
    process = process or psutil.Process()
    cpus = cpus or usable_cpus()
    memory = psutil.virtual_memory()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return DeviceStatus(
        machine=platform.machine(),
        cpu_count=cpus.count,
        cpu_percent=psutil.cpu_percent(interval=None),
        load_average=load,
        memory_total_mb=round(memory.total / 2**20, 1),
        memory_available_mb=round(memory.available / 2**20, 1),
        process_rss_mb=round(process.memory_info().rss / 2**20, 1),
        temperature_c=condition.temperature_c,
        throttled=None if condition.throttled is None else list(condition.throttled),
        cpus_online=cpus.online,
        cpus_affinity=cpus.affinity,
        cpu_quota=cpus.quota,
        cpus_reason=cpus.reason,
    )
