"""The memory lanai sizes a language model's KV cache for, from a fake root laid out like a real box:
the machine's RAM, a cgroup v2 ``memory.max`` on the process's path (the smallest wins), ``max``, and
cgroup v1's ``memory.limit_in_bytes`` (its "no limit" is a huge number)."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from lanai.telemetry.memory import usable_memory

GIB = 2**30


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_no_cgroup_file_system_is_the_machine_ram(tmp_path: Path) -> None:
    assert usable_memory(tmp_path) == psutil.virtual_memory().total


def test_the_smallest_v2_limit_on_the_process_path_wins(tmp_path: Path) -> None:
    _write(tmp_path, "proc/self/cgroup", "0::/kubepods/pod1/ctr\n")
    _write(tmp_path, "sys/fs/cgroup/memory.max", "max\n")
    _write(tmp_path, "sys/fs/cgroup/kubepods/pod1/memory.max", f"{GIB}\n")
    _write(tmp_path, "sys/fs/cgroup/kubepods/pod1/ctr/memory.max", f"{2 * GIB}\n")
    _write(tmp_path, "sys/fs/cgroup/kubepods/other/memory.max", "4096\n")  # not this process's
    assert usable_memory(tmp_path) == min(GIB, psutil.virtual_memory().total)


@pytest.mark.parametrize(("limit", "expected"), [(str(512 * 2**20), 512 * 2**20), ("9223372036854771712", None)])
def test_a_v1_memory_limit_counts_and_its_no_limit_does_not(tmp_path: Path, limit: str, expected: int | None) -> None:
    _write(tmp_path, "proc/self/cgroup", "4:memory:/docker/abc\n1:cpu:/\n0::/\n")
    _write(tmp_path, "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes", limit + "\n")
    assert usable_memory(tmp_path) == (expected or psutil.virtual_memory().total)
