"""lanai on arm64, proven by emulation: scripts/arm64_emulated.sh in an aarch64 Debian userland (qemu-user).

Opt-in (it takes the best part of an hour the first time, and needs root): ``LANAI_ARM64=1 pytest -m arm64
tests/arm64``. See docs/hardware/arm64.md. Correctness only: nothing measured under emulation is a speed.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "arm64_emulated.sh"

pytestmark = [
    pytest.mark.arm64,
    pytest.mark.skipif(
        os.environ.get("LANAI_ARM64") != "1",
        reason="arm64 emulation is opt-in (about 4 minutes the first time, 1.5 cached; needs root and binfmt_misc): set LANAI_ARM64=1",
    ),
    pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0, reason="needs root (debootstrap, chroot, mounts)"),
]


def _cache() -> Path:
    base = os.environ.get("LANAI_TEST_CACHE") or str(Path.home() / ".cache" / "lanai-tests")
    return Path(base) / "arm64-bookworm"


def test_lanai_serves_classifies_and_self_tests_on_emulated_arm64() -> None:
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=3 * 3600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "PASSED" in done.stderr

    run = _cache() / "run"
    result = (run / "result.txt").read_text(encoding="utf-8").split("\n")
    assert any(line.startswith("classify ") for line in result)
    assert any(line in ("doctor_exit 0", "doctor_exit 3") for line in result)
    assert "doctor_machine aarch64" in result
    assert "passed" in result

    wheels = {}
    for line in (run / "wheels.txt").read_text(encoding="utf-8").splitlines():
        name, version, tag, filename = line.split(" ", 3)
        wheels[name.lower().replace("_", "-")] = (version, tag, filename)
    for name in ("onnxruntime", "numpy"):
        assert name in wheels, f"{name} not in the recorded wheels"
        version, tag, filename = wheels[name]
        assert filename.endswith(".whl") and "aarch64" in tag, f"{name} {version} came as {filename}"
