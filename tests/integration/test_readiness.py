"""Readiness a load balancer can act on, over a real server: /health/live and /health/ready, draining,
thermal admission from a fake sensor folder (soft: less admitted, hard: 503 with Retry-After and
degraded), HAProxy's agent-check line on its TCP port, and the metrics that go with them."""

from __future__ import annotations

import argparse
import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lanai.agent import agent_line
from lanai.cli import build_parser
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.fleet_cli import run_drain

from support import ServerThread, make_store


class Box:
    def __init__(self, url: str, plane: DataPlane, sensors: Path, agent_port: int) -> None:
        self.url, self.plane, self.sensors, self.agent_port = url, plane, sensors, agent_port
        self.http = httpx.Client(base_url=url, timeout=30)

    def temperature(self, celsius: float) -> None:
        (self.sensors / "sys/class/thermal/thermal_zone0/temp").write_text(f"{round(celsius * 1000)}\n")
        self.plane.monitor.sample()  # now, rather than at the next interval

    def agent(self) -> str:
        with socket.create_connection(("127.0.0.1", self.agent_port), timeout=5) as conn:
            data = b""
            while chunk := conn.recv(256):
                data += chunk
        return data.decode("ascii")

    def ready(self) -> tuple[int, dict]:  # type: ignore[type-arg]
        answer = self.http.get("/health/ready")
        return answer.status_code, answer.json()

    def classify(self, photo: bytes) -> httpx.Response:
        return self.http.post("/v1/models/tiny/classify", files={"file": ("p.jpg", photo)})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def box(tmp_path: Path, model_files: dict[str, Path]) -> Iterator[Box]:
    sensors = tmp_path / "sensors"
    (sensors / "sys/class/thermal/thermal_zone0").mkdir(parents=True)
    (sensors / "sys/class/thermal/thermal_zone0/temp").write_text("48000\n")
    store = make_store(tmp_path / "store", model_files)
    port = free_port()
    settings = Settings(home=store.root, sensors_root=sensors, monitor_interval_s=60, agent_port=port,
                        thermal_soft_c=75, thermal_hard_c=82, grpc=False)  # fmt: skip
    plane = DataPlane(store, settings)
    with ServerThread(plane, settings) as url:
        found = Box(url, plane, sensors, port)
        yield found
        found.http.close()


def test_live_and_ready_and_what_the_agent_says(box: Box) -> None:
    assert box.http.get("/health/live").json() == {"live": True}
    status, ready = box.ready()
    assert status == 200 and ready["state"] == "ready" and ready["reasons"] == [] and ready["admission"] == 1.0
    assert ready["weight"] == 100 and ready["maxconn"] >= 2
    assert box.agent() == f"up ready 100% maxconn:{ready['maxconn']}\n"
    metrics = box.http.get("/metrics").text
    assert 'lanai_health_state{state="ready"} 1.0' in metrics and 'lanai_health_state{state="loading"} 0.0' in metrics
    assert "lanai_temperature_celsius 48.0" in metrics
    assert 'lanai_model_info{backend="onnx",digest="sha256:' in metrics


def test_a_drained_box_leaves_rotation_but_still_serves(box: Box, photos: dict[str, bytes]) -> None:
    assert box.http.post("/v1/admin/drain").json()["state"] == "draining"
    status, ready = box.ready()
    assert status == 503 and ready["state"] == "draining" and "draining" in ready["reasons"][0]
    assert box.agent() == "drain\n"
    assert box.classify(photos["chelsea"]).status_code == 200  # what it is still sent, it answers
    assert 'lanai_health_state{state="draining"} 1.0' in box.http.get("/metrics").text
    assert box.http.delete("/v1/admin/drain").json()["state"] == "ready"
    assert box.ready()[0] == 200 and box.agent().startswith("up ready")


def test_lanai_drain_on_the_command_line(box: Box, capsys: pytest.CaptureFixture[str]) -> None:
    def drain(*argv: str) -> str:
        args: argparse.Namespace = build_parser().parse_args(["drain", "--url", box.url, *argv])
        assert run_drain(args) == 0
        return capsys.readouterr().out

    assert drain().startswith("draining (draining: taken out of rotation)")
    assert box.ready()[0] == 503
    assert drain("--status").startswith("draining")
    assert drain("--undo").startswith("ready\nthe load balancer's agent check says: weight 100%")


def test_a_hot_box_admits_less_then_refuses_with_retry_after(box: Box, photos: dict[str, bytes]) -> None:
    batcher = box.plane.models["tiny"].batchers()[0]
    configured = batcher.queue_cap
    box.temperature(79.0)  # soft: half way to the hard limit is past, admission ~0.57
    status, ready = box.ready()
    assert status == 200 and ready["state"] == "ready" and 0.5 < ready["admission"] < 0.6
    assert "79.0 °C is past the soft limit" in ready["reasons"][0]
    assert ready["weight"] == round(100 * ready["admission"])
    assert box.agent() == f"up ready {ready['weight']}% maxconn:{ready['maxconn']}\n"
    assert batcher.queue_cap == round(configured * ready["admission"])
    assert box.classify(photos["chelsea"]).status_code == 200

    box.temperature(84.0)  # hard: refused, degraded, drained by the agent
    refused = box.classify(photos["chelsea"])
    assert refused.status_code == 503 and refused.headers["retry-after"] == "30"
    assert "too hot" in refused.json()["error"] and "84.0 °C is past the hard limit" in refused.json()["error"]
    status, ready = box.ready()
    assert status == 503 and ready["state"] == "degraded" and ready["admission"] == 0.0
    assert box.agent() == "drain\n"
    metrics = box.http.get("/metrics").text
    assert "lanai_temperature_celsius 84.0" in metrics and "lanai_admission_ratio 0.0" in metrics
    assert 'lanai_alerts_total{kind="high_temperature"} 1.0' in metrics
    assert 'lanai_alert_active{kind="high_temperature"} 1.0' in metrics

    box.temperature(60.0)  # cooled down: everything back
    assert box.ready()[0] == 200 and batcher.queue_cap == configured
    assert box.classify(photos["chelsea"]).status_code == 200
    assert 'lanai_alert_active{kind="high_temperature"} 0.0' in box.http.get("/metrics").text


def test_loading_and_maintenance_as_the_agent_says_them(tmp_path: Path, model_files: dict[str, Path]) -> None:
    store = make_store(tmp_path / "store", model_files)
    plane = DataPlane(store, Settings(home=store.root, sensors_root=tmp_path, monitor_interval_s=60))
    assert plane.readiness().state == "loading" and agent_line(plane) == "down\n"

    async def run() -> None:
        await plane.start()
        try:
            assert plane.readiness().state == "ready" and agent_line(plane).startswith("up ready 100%")
            plane.maintenance.add("tiny")  # a new version activating
            assert agent_line(plane) == "maint\n"
            plane.maintenance.clear()
            assert agent_line(plane).startswith("up ready")
        finally:
            await plane.shutdown()
        assert plane.readiness().state == "draining"

    asyncio.run(run())


def test_the_monitor_samples_on_its_own(tmp_path: Path, model_files: dict[str, Path]) -> None:
    sensors = tmp_path / "sensors"
    (sensors / "sys/class/thermal/thermal_zone0").mkdir(parents=True)
    zone = sensors / "sys/class/thermal/thermal_zone0/temp"
    zone.write_text("50000\n")
    store = make_store(tmp_path / "store", model_files)
    settings = Settings(home=store.root, sensors_root=sensors, monitor_interval_s=0.05, grpc=False)
    plane = DataPlane(store, settings)
    with ServerThread(plane, settings) as url:
        zone.write_text("90000\n")
        deadline = time.monotonic() + 5
        while httpx.get(f"{url}/health/ready").status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert httpx.get(f"{url}/health/ready").json()["state"] == "degraded"
