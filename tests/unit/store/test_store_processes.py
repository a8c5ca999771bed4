"""Several real processes on one store, and processes killed with SIGKILL mid-write."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from store_helpers import fake_inspect

from lanai.store import Blobs, Store
from lanai.store.active import read_active

WORKER = Path(__file__).with_name("store_worker.py")
pytestmark = pytest.mark.skipif(os.name == "nt", reason="needs SIGKILL and flock")


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_ready(process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    line = process.stdout.readline()
    if line.strip() != "ready":
        process.kill()
        _, err = process.communicate()
        pytest.fail(f"worker did not start: {err}")


def assert_consistent(store: Store, name: str) -> None:
    """Every manifest parses, its blobs are whole, the active file points at a version."""
    blobs = Blobs(store.root / "blobs" / "sha256", store.root / "staging")
    versions = store.versions(name)
    assert versions
    for version in versions:
        manifest = store.manifest(name, version)
        for ref in manifest.files.values():
            assert blobs.verify(ref.sha256), f"blob of version {version} is damaged"
            assert store.blob_path(ref.sha256).stat().st_size == ref.size
    state = read_active(store.root / "models" / name / "active")
    if state is not None:  # None only if killed between the first publish and its activation
        assert state.version in versions
        assert store.manifest(name).version == state.version
    versions_dir = store.root / "models" / name / "versions"
    assert all(p.suffix in (".toml", ".removed") for p in versions_dir.iterdir())


def test_two_processes_adding_at_once_get_distinct_consecutive_versions(tmp_path: Path) -> None:
    root = tmp_path / "store"
    workers = [start("adds", str(root), "m", "10", tag) for tag in ("a", "b")]
    for worker in workers:
        wait_ready(worker)
    for worker in workers:  # release both at once
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    for worker in workers:
        _, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
    store = Store(root)
    assert store.versions("m") == list(range(1, 21))
    assert_consistent(store, "m")
    seen = [store.manifest("m", v).provenance for v in range(1, 21)]
    assert sorted((p["writer"], p["i"]) for p in seen) == [(w, i) for w in "ab" for i in range(10)]
    for writer in "ab":  # each writer's versions come in the order it added them
        order = [p["i"] for p in seen if p["writer"] == writer]
        assert order == sorted(order)


def test_a_process_killed_mid_import_leaves_a_consistent_store(tmp_path: Path) -> None:
    root = tmp_path / "store"
    rng = random.Random(1234)
    for _ in range(6):
        worker = start("crash", str(root), "m")
        wait_ready(worker)
        time.sleep(rng.uniform(0.0, 0.25))  # the point: kill at an arbitrary instant
        worker.send_signal(signal.SIGKILL)
        worker.communicate()
        assert worker.returncode == -signal.SIGKILL
        assert_consistent(Store(root), "m")
    store = Store(root)
    source = tmp_path / "after.onnx"
    source.write_text("fake-model 2 after the crashes\n")
    manifest = store.add(source, name="m", task="classify", inspect=fake_inspect, activate=True)
    assert store.active("m") == manifest.version == max(store.versions("m"))
    store.gc()
    assert list((root / "staging").iterdir()) == []
    assert_consistent(store, "m")
