"""``lanai doctor`` end to end: a real store with the bundled model and a tiny GGUF language model, the
command as a real subprocess (exit status, providers, both benchmarks, --quick), a running server's port,
and doctor_at_start in /health."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from lanai.bundled import DEFAULT_MODEL, ensure_default_model, inspector
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.doctor_cli import EXIT_STATUS
from lanai.protocol.doctor import DoctorReport
from lanai.store import Store

from support import ServerThread, write_tiny_gguf


@dataclass
class Box:
    home: Path
    sensors: Path


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Box:
    root = tmp_path_factory.mktemp("doctor")
    store = Store(root / "store")
    ensure_default_model(store)
    store.add(write_tiny_gguf(root / "tiny.gguf"), name="tiny", task="completion", backend="llamacpp",
              backend_options={"n_ctx": 128, "parallel": 1}, inspect=inspector("llamacpp"))  # fmt: skip
    store.activate("tiny", 1)
    sensors = root / "sensors"
    (sensors / "sys/class/thermal/thermal_zone0").mkdir(parents=True)
    (sensors / "sys/class/thermal/thermal_zone0/temp").write_text("51000\n")
    return Box(store.root, sensors)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def doctor(box: Box, *argv: str, port: int) -> tuple[int, DoctorReport]:
    env = {**os.environ, "LANAI_SENSORS_ROOT": str(box.sensors), "LANAI_PORT": str(port), "LANAI_HOST": "127.0.0.1"}
    done = subprocess.run([sys.executable, "-m", "lanai.cli", "doctor", "--home", str(box.home), "--json", *argv],
                          capture_output=True, text=True, env=env, timeout=120, check=False)  # fmt: skip
    return done.returncode, DoctorReport.from_dict(json.loads(done.stdout))


def checks(report: DoctorReport) -> dict[str, str]:
    return {c.name: c.status for c in report.checks}


def test_doctor_benchmarks_the_bundled_model(box: Box) -> None:
    code, report = doctor(box, "--runs", "5", port=free_port())
    assert code == EXIT_STATUS[report.status] and report.status != "fail", report.checks
    assert "CPUExecutionProvider" in report.providers
    assert checks(report)["temperature"] == "ok" and checks(report)["port"] == "ok"
    bench, tiny = sorted(report.benchmarks, key=lambda b: b.model != DEFAULT_MODEL)
    assert bench.model == DEFAULT_MODEL and bench.runs == 5 and bench.execution_provider == "CPUExecutionProvider"
    assert bench.p50_ms is not None and bench.p95_ms is not None and 0 < bench.p50_ms <= bench.p95_ms
    assert checks(report)[f"model {DEFAULT_MODEL}"] == "ok" and checks(report)["model tiny"] == "ok"
    assert tiny.p50_ms is not None and tiny.p50_ms > 0 and "8 tokens greedy" in (tiny.note or "")


def test_quick_skips_the_benchmark(box: Box) -> None:
    code, report = doctor(box, "--quick", port=free_port())
    assert code == EXIT_STATUS[report.status] and report.benchmarks == ()
    assert not any(name.startswith("model ") for name in checks(report))


@pytest.fixture(scope="module")
def server(box: Box) -> Iterator[str]:
    settings = Settings(home=box.home, sensors_root=box.sensors, doctor_at_start=True, grpc=False, discovery=False,
                        monitor_interval_s=60)  # fmt: skip
    with ServerThread(DataPlane(Store(box.home), settings), settings) as url:
        yield url


def test_the_port_check_finds_a_running_server(box: Box, server: str) -> None:
    _, report = doctor(box, "--quick", port=int(server.rsplit(":", 1)[1]))
    port = next(c for c in report.checks if c.name == "port")
    assert port.status == "ok" and "answers GET /health/live" in port.message


def test_doctor_at_start_shows_in_health(server: str) -> None:
    health = httpx.get(server + "/health", timeout=30).json()
    summary = health["doctor"]
    assert summary["status"] in ("ok", "warn") and summary["checked_at"] > 0
    assert all(line.startswith(("warn ", "fail ")) for line in summary["problems"])
