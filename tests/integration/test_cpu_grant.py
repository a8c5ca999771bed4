"""``lanai serve`` sizes for the CPUs the box grants it: pinned to one CPU (``taskset``) or under a cgroup
CPU quota it runs one batch instance and no lone-request session, and ``/health`` and the log say what it
found; unpinned on a multi-core box it runs one instance more than the cores."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import ServeProcess

ONLINE = os.cpu_count() or 1


def health(server: ServeProcess) -> dict[str, Any]:
    return httpx.get(server.url + "/health", timeout=10).json()  # type: ignore[no-any-return]


@contextmanager
def serving(home: Path, preexec: Callable[[], None] | None = None) -> Iterator[ServeProcess]:
    server = ServeProcess(home, preexec=preexec)
    try:
        yield server
    finally:
        server.stop()


def test_pinned_to_one_cpu_it_runs_one_instance_and_says_so(tmp_path: Path) -> None:
    with serving(tmp_path / "home", lambda: os.sched_setaffinity(0, {0})) as server:
        device = health(server)["device"]
        assert device["cpu_count"] == 1 and device["cpus_affinity"] == 1 and device["cpus_online"] == ONLINE
        if ONLINE > 1:
            assert device["cpus_reason"] == f"1 of {ONLINE} CPUs: affinity {{0}}"
            assert "sizing for 1 of" in server.line("sizing for")
        assert server.line("serving efficientnet-lite0").rstrip().endswith("on CPUExecutionProvider: 1 batch instance")


@pytest.mark.skipif(ONLINE < 2, reason="one CPU online: unpinned is pinned")
def test_unpinned_it_runs_one_instance_more_than_the_cpus_and_a_lone_request_session(tmp_path: Path) -> None:
    if len(os.sched_getaffinity(0)) < ONLINE:
        pytest.skip("this test runs with a CPU affinity of its own")
    with serving(tmp_path / "home") as server:
        device = health(server)["device"]
        if device["cpu_quota"] is not None:
            pytest.skip(f"this box has a cgroup CPU quota: {device['cpus_reason']}")
        assert device["cpu_count"] == ONLINE and device["cpus_reason"] == f"{ONLINE} CPUs: all online"
        instances = min(ONLINE + 1, 5)
        assert (
            server.line("serving efficientnet-lite0")
            .rstrip()
            .endswith(f": {instances} batch instances and a lone-request session")
        )


@contextmanager
def cpu_quota(quota: int, period: int) -> Iterator[Callable[[], None]]:
    """A new cgroup with a CPU quota, v2 (``cpu.max``) where the v2 hierarchy has the cpu controller, else
    v1 (``cpu.cfs_quota_us``); yields a ``preexec_fn`` that moves the child into it. Skips where neither
    can be made (not root, no writable cgroup file system)."""
    name = f"lanai-test-{uuid.uuid4().hex[:8]}"
    v2 = Path("/sys/fs/cgroup")
    folder: Path | None = None
    try:
        if "cpu" in (v2 / "cgroup.controllers").read_text().split() and (v2 / "cgroup.procs").exists():
            if "cpu" not in (v2 / "cgroup.subtree_control").read_text().split():
                (v2 / "cgroup.subtree_control").write_text("+cpu")
            folder = v2 / name
            folder.mkdir()
            (folder / "cpu.max").write_text(f"{quota} {period}")
    except OSError:
        folder = None
    if folder is None:
        v1 = Path("/sys/fs/cgroup/cpu")
        try:
            if not (v1 / "cpu.cfs_quota_us").exists():
                pytest.skip("no cgroup v2 with the cpu controller and no cgroup v1 cpu controller here")
            folder = v1 / name
            folder.mkdir()
            (folder / "cpu.cfs_period_us").write_text(str(period))
            (folder / "cpu.cfs_quota_us").write_text(str(quota))
        except OSError as exc:
            pytest.skip(f"cannot make a cgroup with a CPU quota here: {exc}")
    procs = folder / "cgroup.procs"

    def enter() -> None:
        procs.write_text(str(os.getpid()))

    try:
        yield enter
    finally:
        folder.rmdir()


def test_under_a_cgroup_cpu_quota_it_runs_one_instance(tmp_path: Path) -> None:
    with cpu_quota(50_000, 100_000) as enter, serving(tmp_path / "home", enter) as server:
        device = health(server)["device"]
        assert device["cpu_quota"] == 0.5 and device["cpu_count"] == 1
        assert "cgroup quota 0.5" in device["cpus_reason"] and "50000 100000" in device["cpus_reason"]
        assert "cgroup quota 0.5" in server.line("sizing for")
        assert server.line("serving efficientnet-lite0").rstrip().endswith("on CPUExecutionProvider: 1 batch instance")
