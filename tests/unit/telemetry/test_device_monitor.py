"""The device monitor on a fake sensor folder laid out like a Raspberry Pi's /sys: levels with hysteresis,
admission, throttling bits, the cgroup's CPU quota, and alerts that begin and end once."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from lanai.telemetry.monitor import Condition, DeviceMonitor, ThermalLimits, cgroup_cpus


class Sensors:
    def __init__(self, root: Path) -> None:
        self.root = root
        for zone in (0, 1):
            (root / f"sys/class/thermal/thermal_zone{zone}").mkdir(parents=True)
        (root / "sys/devices/platform/soc/soc:firmware").mkdir(parents=True)
        (root / "sys/fs/cgroup").mkdir(parents=True)
        self.temperature(45.0)
        self.throttled(0)

    def temperature(self, celsius: float, other: float = 30.0) -> None:
        (self.root / "sys/class/thermal/thermal_zone0/temp").write_text(f"{round(celsius * 1000)}\n")
        (self.root / "sys/class/thermal/thermal_zone1/temp").write_text(f"{round(other * 1000)}\n")

    def throttled(self, bits: int) -> None:
        (self.root / "sys/devices/platform/soc/soc:firmware/get_throttled").write_text(f"0x{bits:x}\n")


@pytest.fixture
def sensors(tmp_path: Path) -> Sensors:
    return Sensors(tmp_path)


def monitor(sensors: Sensors, **kwargs: object) -> tuple[DeviceMonitor, list[Condition], list[str]]:
    changes: list[Condition] = []
    alerts: list[str] = []
    found = DeviceMonitor(ThermalLimits(soft_c=75, hard_c=82, hysteresis_c=3, min_memory_mb=0, min_disk_mb=0),
                          root=sensors.root, on_change=changes.append, on_alert=alerts.append, **kwargs)  # type: ignore[arg-type]  # fmt: skip
    return found, changes, alerts


def test_levels_rise_with_the_temperature_and_fall_only_past_the_hysteresis(sensors: Sensors) -> None:
    watch, changes, alerts = monitor(sensors)
    assert watch.sample().level == "normal" and watch.condition.admission == 1.0
    assert watch.condition.temperature_c == 45.0  # the hottest zone
    sensors.temperature(78.5)
    warm = watch.sample()
    assert warm.level == "soft" and warm.admission == pytest.approx(1 - 0.5 * 0.75, abs=0.01)  # half way: 0.625
    assert "78.5 °C is past the soft limit" in (warm.reason() or "")
    sensors.temperature(83)
    assert watch.sample().level == "hard" and watch.condition.admission == 0.0
    sensors.temperature(80.5)  # below the hard limit, but not by the hysteresis: stays hard
    assert watch.sample().level == "hard"
    sensors.temperature(78.9)
    assert watch.sample().level == "soft"
    sensors.temperature(73)  # under the soft limit, within the hysteresis: still soft, at half admission
    assert watch.sample().level == "soft" and watch.condition.admission == 0.5
    sensors.temperature(71.9)
    assert watch.sample().level == "normal"
    # reported: each level, and a change of admission within one (0.58 at 78.9 °C, then 0.5)
    assert [(c.level, c.admission) for c in changes] == [
        ("soft", 0.625), ("hard", 0.0), ("soft", pytest.approx(0.582, abs=0.001)), ("soft", 0.5), ("normal", 1.0)]  # fmt: skip
    assert alerts == ["high_temperature"]  # began once, however long it lasted


def test_firmware_throttling_lowers_admission_even_when_cool(sensors: Sensors, caplog: pytest.LogCaptureFixture) -> None:
    watch, _, alerts = monitor(sensors)
    watch.sample()
    sensors.throttled(0b0101)  # under-voltage now, throttled now
    with caplog.at_level(logging.WARNING, logger="lanai.telemetry.monitor"):
        now = watch.sample()
    assert now.level == "soft" and now.admission == 0.5
    assert now.throttled == ("under-voltage", "throttled")
    assert alerts == ["throttling", "under_voltage"]
    assert "alert under_voltage began: under-voltage, throttled" in caplog.text
    sensors.throttled(0x50000)  # only the "has occurred since boot" bits: nothing now
    assert watch.sample().throttled == ()


def test_no_sensors_means_normal(tmp_path: Path) -> None:
    watch = DeviceMonitor(root=tmp_path)
    now = watch.sample()
    assert (now.level, now.admission, now.temperature_c, now.throttled) == ("normal", 1.0, None, None)


def test_the_cgroup_quota_is_read_as_cpus(sensors: Sensors) -> None:
    quota = sensors.root / "sys/fs/cgroup/cpu.max"
    quota.write_text("150000 100000\n")
    assert cgroup_cpus(sensors.root) == 1.5
    quota.write_text("max 100000\n")
    assert cgroup_cpus(sensors.root) is None
    quota.write_text("garbage\n")
    assert cgroup_cpus(sensors.root) is None


def test_low_disk_and_memory_alert(sensors: Sensors, tmp_path: Path) -> None:
    watch = DeviceMonitor(ThermalLimits(min_memory_mb=10**9, min_disk_mb=10**12), root=sensors.root, store=tmp_path)
    assert set(watch.sample().alerts) == {"memory", "disk"}


def test_the_thread_samples_until_stopped(sensors: Sensors) -> None:
    import time

    samples: list[Condition] = []
    watch = DeviceMonitor(root=sensors.root, interval=0.02, on_sample=samples.append)
    watch.start()
    time.sleep(0.2)
    watch.stop()
    count = len(samples)
    time.sleep(0.1)
    assert count >= 3 and len(samples) == count
