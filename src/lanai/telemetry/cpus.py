"""The CPUs this process may really use, which instances and threads are sized for: the CPUs online, cut
to the process's affinity (``taskset``, systemd ``CPUAffinity=``) and to its cgroup's CPU quota (Docker
``--cpus``, Kubernetes limits).

The quota is read from the process's own cgroup and every cgroup above it (the smallest wins): cgroup v2
``cpu.max`` (``QUOTA PERIOD`` or ``max PERIOD``) under ``sys/fs/cgroup`` (or ``sys/fs/cgroup/unified`` on
a hybrid box), else cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` under ``sys/fs/cgroup/cpu``;
the cgroup's path comes from ``proc/self/cgroup``. Files are read under ``root`` (``/`` on a real box; a
test passes a folder laid out the same way). Standard library only: the light layers may import it.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

__all__ = ["CpuGrant", "cgroup_folders", "cpu_quota", "find_cpus", "usable_cpus"]


@dataclass(frozen=True)
class CpuGrant:
    """What the box grants this process, and where that came from."""

    count: int
    """CPUs to size for: the affinity's CPUs, at most the quota rounded up; at least 1."""
    online: int
    """CPUs online (``os.cpu_count()``)."""
    affinity: int
    """CPUs the process may run on (``os.sched_getaffinity``; the online count where there is none)."""
    quota: float | None
    """CPUs' worth of time the cgroup grants, e.g. 1.5; None without a quota."""
    reason: str
    """One line, e.g. ``1 of 2 CPUs: affinity {0}``."""


@functools.lru_cache(maxsize=8)
def usable_cpus(root: Path = Path("/")) -> CpuGrant:
    """:func:`find_cpus`, found once per ``root`` (the grant is taken as fixed for the process's life)."""
    return find_cpus(root)


def find_cpus(root: Path = Path("/")) -> CpuGrant:
    """The CPUs granted now (see the module's docstring)."""
    online = os.cpu_count() or 1
    cpus = _affinity()
    affinity = len(cpus) if cpus else online
    found = _quota(root)
    quota = None if found is None else found[0]
    count = affinity if quota is None else min(affinity, math.ceil(quota - 1e-9))
    count = max(1, count)
    why = []
    if cpus and affinity < online:
        why.append(f"affinity {{{_ranges(cpus)}}}")
    if found is not None:
        why.append(f"cgroup quota {found[0]:g} ({found[1]})")
    head = f"{count} of {online} CPUs" if count < online else f"{count} CPU" + ("s" if count != 1 else "")
    return CpuGrant(count, online, affinity, quota, f"{head}: {'; '.join(why) or 'all online'}")


def cpu_quota(root: Path = Path("/")) -> float | None:
    """CPUs' worth of time the process's cgroups grant now (the smallest along its path), or None."""
    found = _quota(root)
    return None if found is None else found[0]


def _affinity() -> set[int] | None:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return None


def _ranges(cpus: set[int]) -> str:
    """``{0, 1, 2, 5}`` as ``0-2,5``."""
    runs: list[list[int]] = []
    for cpu in sorted(cpus):
        if runs and cpu == runs[-1][1] + 1:
            runs[-1][1] = cpu
        else:
            runs.append([cpu, cpu])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _quota(root: Path) -> tuple[float, str] | None:
    """The smallest quota along the process's cgroup path, in CPUs, and the file it came from."""
    paths = _cgroup_paths(root / "proc/self/cgroup")
    found: list[tuple[float, str]] = []
    for folder in cgroup_folders(root):
        limit = _cpu_max(folder / "cpu.max")
        if limit is not None:
            found.append((limit[0], f"{_where(root, folder)}cpu.max {limit[1]}"))
    if not found:
        for mount in ("sys/fs/cgroup/cpu", "sys/fs/cgroup/cpu,cpuacct"):
            for folder in _up_from(root / mount, paths.get("v1", "/")):
                limit = _cfs(folder)
                if limit is not None:
                    found.append((limit[0], f"{_where(root, folder)}cpu.cfs_quota_us/cfs_period_us {limit[1]}"))
            if found:
                break
    return min(found, key=lambda f: f[0]) if found else None


def cgroup_folders(root: Path = Path("/"), *, v1: str = "") -> list[Path]:
    """The folders of the process's cgroup v2 and of each cgroup above it; with ``v1`` (a controller:
    ``memory``), those of its cgroup v1 hierarchy instead."""
    paths = _cgroup_paths(root / "proc/self/cgroup")
    if v1:
        return _up_from(root / "sys/fs/cgroup" / v1, paths.get(v1, "/"))
    return [
        f for mount in ("sys/fs/cgroup", "sys/fs/cgroup/unified") for f in _up_from(root / mount, paths.get("v2", "/"))
    ]


def _cgroup_paths(path: Path) -> dict[str, str]:
    """The process's cgroup in the v2 hierarchy (``0::/a/b``) and in v1's cpu (``4:cpu,cpuacct:/a``) and
    memory controllers."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    found: dict[str, str] = {}
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            found["v2"] = parts[2]
        elif "cpu" in parts[1].split(","):
            found["v1"] = parts[2]
        elif "memory" in parts[1].split(","):
            found["memory"] = parts[2]
    return found


def _up_from(mount: Path, cgroup: str) -> list[Path]:
    """The cgroup's folder and each one above it up to the mount (those that exist: in a container
    without its own cgroup namespace the path names the host's folders, and the mount is the leaf)."""
    parts = [p for p in PurePosixPath(cgroup).parts if p not in ("/", "..", ".")]
    folders = [mount.joinpath(*parts[:depth]) for depth in range(len(parts), -1, -1)]
    return [f for f in folders if f.is_dir()]


def _where(root: Path, folder: Path) -> str:
    relative = folder.relative_to(root).as_posix()
    for mount in ("sys/fs/cgroup/unified", "sys/fs/cgroup/cpu,cpuacct", "sys/fs/cgroup/cpu", "sys/fs/cgroup"):
        if relative == mount:
            return ""
        if relative.startswith(mount + "/"):
            return relative[len(mount) :] + " "
    return ""


def _cpu_max(path: Path) -> tuple[float, str] | None:
    try:
        text = path.read_text().strip()
        quota, period = text.split()
        if quota == "max":
            return None
        cpus = int(quota) / int(period)
    except (OSError, ValueError, ZeroDivisionError):
        return None
    return (cpus, text) if cpus > 0 else None


def _cfs(folder: Path) -> tuple[float, str] | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
        cpus = quota / period
    except (OSError, ValueError, ZeroDivisionError):
        return None
    return (cpus, f"{quota} {period}") if cpus > 0 else None
