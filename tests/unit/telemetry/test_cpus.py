"""The CPUs lanai sizes for, from a fake root laid out like a real box: cgroup v2 ``cpu.max`` at the
process's own cgroup and above it, cgroup v1's CFS quota, ``max``, malformed files, no cgroup file system,
and the CPU affinity."""

from __future__ import annotations

from pathlib import Path

import pytest

from lanai.telemetry import cpus
from lanai.telemetry.cpus import find_cpus, usable_cpus


class Box:
    def __init__(self, root: Path) -> None:
        self.root = root

    def cgroup(self, text: str) -> None:
        (self.root / "proc/self").mkdir(parents=True, exist_ok=True)
        (self.root / "proc/self/cgroup").write_text(text)

    def cpu_max(self, folder: str, text: str, mount: str = "sys/fs/cgroup") -> None:
        path = self.root / mount / folder.lstrip("/")
        path.mkdir(parents=True, exist_ok=True)
        (path / "cpu.max").write_text(text)

    def cfs(self, folder: str, quota: str, period: str = "100000") -> None:
        path = self.root / "sys/fs/cgroup/cpu" / folder.lstrip("/")
        path.mkdir(parents=True, exist_ok=True)
        (path / "cpu.cfs_quota_us").write_text(quota + "\n")
        (path / "cpu.cfs_period_us").write_text(period + "\n")


@pytest.fixture
def box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Box:
    """Four CPUs online, all in the affinity."""
    monkeypatch.setattr(cpus.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    return Box(tmp_path)


def test_no_cgroup_file_system_and_no_affinity_limit_is_every_cpu_online(box: Box) -> None:
    grant = find_cpus(box.root)
    assert (grant.count, grant.online, grant.affinity, grant.quota) == (4, 4, 4, None)
    assert grant.reason == "4 CPUs: all online"


def test_the_affinity_limits_the_count(box: Box, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    grant = find_cpus(box.root)
    assert (grant.count, grant.online, grant.affinity) == (1, 4, 1)
    assert grant.reason == "1 of 4 CPUs: affinity {0}"
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: {0, 1, 2, 5}, raising=False)
    monkeypatch.setattr(cpus.os, "cpu_count", lambda: 8)
    assert find_cpus(box.root).reason == "4 of 8 CPUs: affinity {0-2,5}"


def test_without_sched_getaffinity_the_cpus_online_count(box: Box, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(cpus.os, "sched_getaffinity", raising=False)
    assert find_cpus(box.root).count == 4


def test_a_cgroup_v2_quota_at_the_root_is_rounded_up(box: Box) -> None:
    box.cpu_max("", "150000 100000\n")
    grant = find_cpus(box.root)
    assert (grant.count, grant.quota) == (2, 1.5)
    assert grant.reason == "2 of 4 CPUs: cgroup quota 1.5 (cpu.max 150000 100000)"


def test_the_quota_of_the_process_own_cgroup_counts(box: Box) -> None:
    box.cgroup("0::/system.slice/lanai.service\n")
    box.cpu_max("", "max 100000")
    box.cpu_max("system.slice", "max 100000")
    box.cpu_max("system.slice/lanai.service", "50000 100000")
    grant = find_cpus(box.root)
    assert (grant.count, grant.quota) == (1, 0.5)
    assert grant.reason == "1 of 4 CPUs: cgroup quota 0.5 (/system.slice/lanai.service cpu.max 50000 100000)"


def test_a_parent_cgroup_quota_smaller_than_the_leaf_wins(box: Box) -> None:
    box.cgroup("0::/kubepods/pod1/ctr\n")
    box.cpu_max("kubepods/pod1", "200000 100000")
    box.cpu_max("kubepods/pod1/ctr", "300000 100000")
    grant = find_cpus(box.root)
    assert (grant.count, grant.quota) == (2, 2.0)
    assert "/kubepods/pod1 cpu.max 200000 100000" in grant.reason


def test_a_quota_above_the_affinity_leaves_the_affinity(box: Box, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: {2, 3}, raising=False)
    box.cpu_max("", "300000 100000")
    grant = find_cpus(box.root)
    assert (grant.count, grant.affinity, grant.quota) == (2, 2, 3.0)
    assert grant.reason == "2 of 4 CPUs: affinity {2-3}; cgroup quota 3 (cpu.max 300000 100000)"


def test_a_path_that_is_not_under_the_mount_falls_back_to_the_mount(box: Box) -> None:
    """In a container without its own cgroup namespace the path names the host's folders."""
    box.cgroup("0::/docker/0123abcd\n")
    box.cpu_max("", "100000 100000")
    assert find_cpus(box.root).count == 1


def test_a_tiny_quota_still_gives_one_cpu(box: Box) -> None:
    box.cpu_max("", "1000 100000")
    grant = find_cpus(box.root)
    assert (grant.count, grant.quota) == (1, 0.01)


@pytest.mark.parametrize("text", ["max 100000", "", "garbage", "150000", "150000 0", "0 100000", "-1 100000", "a b"])
def test_max_and_malformed_cpu_max_are_no_quota(box: Box, text: str) -> None:
    box.cgroup("0::/\n")
    box.cpu_max("", text)
    grant = find_cpus(box.root)
    assert (grant.count, grant.quota) == (4, None) and grant.reason == "4 CPUs: all online"


def test_a_malformed_proc_self_cgroup_is_ignored(box: Box) -> None:
    box.cgroup("nonsense\n\n7\n0::\n")
    box.cpu_max("", "200000 100000")
    assert find_cpus(box.root).count == 2


def test_cgroup_v2_on_a_hybrid_box_is_read_under_unified(box: Box) -> None:
    box.cgroup("1:cpu:/\n0::/lanai\n")
    box.cpu_max("lanai", "100000 100000", mount="sys/fs/cgroup/unified")
    assert find_cpus(box.root).count == 1


def test_cgroup_v1_cfs_quota(box: Box) -> None:
    box.cgroup("4:cpu,cpuacct:/docker/abc\n3:memory:/docker/abc\n0::/\n")
    box.cfs("", "-1")
    box.cfs("docker/abc", "250000")
    grant = find_cpus(box.root)
    assert (grant.count, grant.quota) == (3, 2.5)
    assert grant.reason == "3 of 4 CPUs: cgroup quota 2.5 (/docker/abc cpu.cfs_quota_us/cfs_period_us 250000 100000)"


@pytest.mark.parametrize("quota", ["-1", "x", ""])
def test_cgroup_v1_without_a_quota_or_malformed(box: Box, quota: str) -> None:
    box.cgroup("4:cpu:/a\n")
    box.cfs("a", quota)
    assert find_cpus(box.root).quota is None


def test_usable_cpus_is_found_once_per_root(box: Box, monkeypatch: pytest.MonkeyPatch) -> None:
    usable_cpus.cache_clear()
    first = usable_cpus(box.root)
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert usable_cpus(box.root) is first and first.count == 4
    assert find_cpus(box.root).count == 1
    usable_cpus.cache_clear()
