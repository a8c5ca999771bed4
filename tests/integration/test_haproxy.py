"""Three lanai boxes behind a real HAProxy (Debian's haproxy, the shipped deploy/haproxy/haproxy.cfg with
loopback addresses), under load from `lanai bench`: one box is killed (SIGKILL) and another drained in
the middle of the run. No request fails (HAProxy retries what the dead box dropped), the dead box leaves
rotation within seconds, and the drained one finishes what it has and gets nothing new."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "haproxy" / "haproxy.cfg"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Box:
    def __init__(self, home: Path) -> None:
        self.port, self.agent_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (home.parent / f"{home.name}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lanai.cli", "serve", "--home", str(home), "--host", "127.0.0.1",
             "--port", str(self.port), "--agent-port", str(self.agent_port), "--no-grpc", "--no-discovery",
             "--threads", "1"],
            stdout=subprocess.DEVNULL, stderr=self.log,
        )  # fmt: skip

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"lanai serve exited with {self.proc.returncode}")
            time.sleep(0.1)
        raise RuntimeError("lanai serve did not become ready in 60 s")

    def requests(self) -> float:
        text = httpx.get(self.url + "/metrics", timeout=5).text
        return sum(float(v) for v in re.findall(r'^lanai_requests_total\{[^}]*endpoint="/v1/infer"[^}]*\} (\S+)$',
                                                text, re.M))  # fmt: skip

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class HAProxy:
    def __init__(self, folder: Path, boxes: list[Box]) -> None:
        self.port = free_port()
        self.socket = folder / "haproxy.sock"
        text = CONFIG.read_text()
        replaced = {
            "bind": re.subn(r"^    bind :8000$", f"    bind 127.0.0.1:{self.port}", text, flags=re.M),
        }
        text = replaced["bind"][0]
        text, sockets = re.subn(r"stats socket /run/haproxy/lanai.sock", f"stats socket {self.socket}", text)
        servers = "".join(f"    server box{i + 1} 127.0.0.1:{b.port} agent-port {b.agent_port}\n"
                          for i, b in enumerate(boxes))  # fmt: skip
        text, found = re.subn(r"(?:^    server box\d .*\n)+", servers, text, flags=re.M)
        assert replaced["bind"][1] == sockets == found == 1, "deploy/haproxy/haproxy.cfg changed its shape"
        self.config = folder / "haproxy.cfg"
        self.config.write_text(text)
        check = subprocess.run(["haproxy", "-c", "-f", str(self.config)], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        self.log = (folder / "haproxy.log").open("wb")
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", str(self.config)], stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 10
        while not self.socket.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def status(self, column: str = "status") -> dict[str, str]:
        """Each server's state as HAProxy sees it (UP, DOWN, DRAIN, …), or another column of its stats."""
        with socket.socket(socket.AF_UNIX) as conn:
            conn.connect(str(self.socket))
            conn.sendall(b"show stat\n")
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
        lines = data.decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(header, line.split(","))) for line in lines[1:] if line]
        return {r["svname"]: r[column] for r in rows if r["svname"].startswith("box")}

    def wait_for(self, server: str, states: tuple[str, ...], limit: float) -> float:
        began = time.monotonic()
        while time.monotonic() - began < limit:
            if self.status().get(server, "").split(" ")[0] in states:
                return time.monotonic() - began
            time.sleep(0.05)
        raise AssertionError(f"{server} did not become {states} within {limit} s: {self.status()}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[list[Box], HAProxy]]:
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed (apt-get install haproxy)")
    boxes = [Box(tmp_path / f"box{i}") for i in range(1, 4)]
    balancer = None
    try:
        for box in boxes:
            box.wait_ready()
        balancer = HAProxy(tmp_path, boxes)
        for name in ("box1", "box2", "box3"):
            balancer.wait_for(name, ("UP",), 15)
        yield boxes, balancer
    finally:
        if balancer is not None:
            balancer.stop()
        for box in boxes:
            box.stop()


def test_a_killed_box_and_a_drained_box_lose_no_request(fleet: tuple[list[Box], HAProxy], tmp_path: Path) -> None:
    boxes, balancer = fleet
    report = tmp_path / "bench.json"
    with report.open("w") as out:
        bench = subprocess.Popen(
            [sys.executable, "-m", "lanai.cli", "bench", f"http://127.0.0.1:{balancer.port}", "-c", "8",
             "-d", "12", "--warmup", "0.5", "--json", "--no-progress", "--timeout", "30"],
            stdout=out, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(3.5)
        assert all(box.requests() > 0 for box in boxes)  # all three were taking work
        # the agents' weights (1-100 %) scale a weight of 100: at HAProxy's default of 1, 99 % would be 0
        assert all(int(weight) >= 50 for weight in balancer.status("weight").values())
        boxes[0].proc.send_signal(signal.SIGKILL)
        left = balancer.wait_for("box1", ("DOWN",), 10)
        time.sleep(1.5)
        drained = subprocess.run([sys.executable, "-m", "lanai.cli", "drain", "--url", boxes[1].url],
                                 capture_output=True, text=True, timeout=30)  # fmt: skip
        assert drained.returncode == 0 and drained.stdout.startswith("draining"), drained.stderr
        balancer.wait_for("box2", ("DRAIN",), 3)  # the agent check says drain within a second
        time.sleep(1.0)  # what box2 had in hand finishes
        before = boxes[1].requests()
        time.sleep(3.0)
        after = boxes[1].requests()
        bench.wait(60)
    result = json.loads(report.read_text())
    # nothing lost: retried on another box. The one exception HAProxy cannot cover: an answer the killed box
    # was already writing (its first bytes had gone on to the client) ends with the connection; seen once
    # in 5,207 requests in CI. Any other error, or more than that one, fails.
    errors = result["errors"]
    assert result["ok"] > 200 and (errors == {} or errors == {"connection": 1}), result
    assert left < 5.0  # the dead box left rotation within seconds
    assert after - before <= 1  # the drained box got no new work (the metrics scrape itself aside)
    assert boxes[2].requests() > after  # the last box carried on
    assert boxes[1].proc.poll() is None and boxes[1].requests() > 0
