"""Instances and threads are sized for the CPUs the box grants (``telemetry.cpus``), not those online."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from lanai.config import Settings
from lanai.dataplane.models import _backend_options, _instances
from lanai.telemetry import cpus
from lanai.types import BatchingConfig


@pytest.fixture
def box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A box with 4 CPUs online; ``box(affinity, cpu_max)`` gives the settings of a server on it."""
    monkeypatch.setattr(cpus.os, "cpu_count", lambda: 4)

    def settings(affinity: set[int], cpu_max: str | None = None, **kwargs: Any) -> Settings:
        monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: affinity, raising=False)
        root = tmp_path / f"box{len(list(tmp_path.iterdir()))}"
        (root / "sys/fs/cgroup").mkdir(parents=True)
        if cpu_max is not None:
            (root / "sys/fs/cgroup/cpu.max").write_text(cpu_max)
        return Settings(home=tmp_path, sensors_root=root, **kwargs)

    yield settings
    cpus.usable_cpus.cache_clear()


MANIFEST: Any = SimpleNamespace(backend_options={})


def test_all_cpus_online_give_one_instance_more_and_threads_shared_out(box: Any) -> None:
    settings = box({0, 1, 2, 3})
    batching = _instances(BatchingConfig(instances=0), settings)
    assert batching.instances == 5
    assert _backend_options(MANIFEST, settings, batching.instances).intra_op_threads == 1
    assert _backend_options(MANIFEST, settings, 1).intra_op_threads == 0  # the runtime's own choice


def test_pinned_to_one_cpu_one_instance_with_one_thread(box: Any) -> None:
    settings = box({0})
    assert _instances(BatchingConfig(instances=0), settings).instances == 1
    assert _backend_options(MANIFEST, settings, 1).intra_op_threads == 1


def test_a_cgroup_quota_sizes_like_the_cpus_it_grants(box: Any) -> None:
    settings = box({0, 1, 2, 3}, "150000 100000")
    assert _instances(BatchingConfig(instances=0), settings).instances == 3
    assert _backend_options(MANIFEST, settings, 3).intra_op_threads == 1
    assert _backend_options(MANIFEST, settings, 1).intra_op_threads == 2


def test_settings_and_manifests_still_decide_when_they_say(box: Any) -> None:
    settings = box({0}, intra_op_threads=3)
    assert _instances(BatchingConfig(instances=2), settings).instances == 2
    assert _backend_options(MANIFEST, settings, 2).intra_op_threads == 3
    given: Any = SimpleNamespace(backend_options={"intra_op_threads": 4})
    assert _backend_options(given, box({0}), 1).intra_op_threads == 4
