"""The canary's trial folders: each is removed after its trial, and one left by a killed server is
removed by the next trial on the box, while those of running processes are left alone."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from lanai.backends import BackendOptions, canary
from lanai.bundled import bundled_model_dir


def test_a_killed_servers_trial_folder_is_removed_by_the_next_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)  # a process that has ended: as a server killed mid-trial
    orphan, running, other = (tmp_path / name for name in (
        f"lanai-canary-{dead_pid}-k1ll3d", f"lanai-canary-{os.getpid()}-busy", "lanai-canary-notapid"))  # fmt: skip
    for folder in (orphan, running, other):
        folder.mkdir()
        (folder / "answer.json").write_text('{"loaded": true}')
    report = canary.check(bundled_model_dir() / "model.onnx", "onnx", BackendOptions(providers=("cpu",)), timeout=120)
    assert report["loaded"]
    assert not orphan.exists(), "the folder of a process that no longer runs should be gone"
    assert running.exists() and other.exists()  # a live process's trial, and a name it cannot read a pid from
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([running.name, other.name])  # its own: removed
