"""``lanai serve`` as a real process: first run on an empty store, and graceful shutdown on SIGTERM."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from support import ServeProcess, encode, photo


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeProcess]:
    process = ServeProcess(tmp_path / "home")
    yield process
    process.stop()


def test_first_run_serves_the_bundled_model(serve: ServeProcess, tmp_path: Path, photos: dict[str, bytes]) -> None:
    serve.wait_ready()
    health = httpx.get(serve.url + "/health").json()
    assert health["status"] == "healthy"
    assert [(m["name"], m["version"]) for m in health["models"]] == [("efficientnet-lite0", "1")]
    r = httpx.post(serve.url + "/predict", files={"file": ("c.jpg", photos["chelsea"])}, timeout=30)
    assert r.status_code == 200 and "cat" in r.json()["label"].lower()
    assert (tmp_path / "home" / "models" / "efficientnet-lite0").is_dir()
    # the first run made an admin key, told where it is, and keeps only its digest in the key records
    admin_file = tmp_path / "home" / "keys" / "admin.key"
    assert any(f"created an admin key in {admin_file}" in line for line in serve.log)
    key = admin_file.read_text().strip()
    assert (
        oct(admin_file.stat().st_mode & 0o777) == "0o600" and key not in (admin_file.parent / "keys.toml").read_text()
    )
    listing = subprocess.run([sys.executable, "-m", "lanai.cli", "keys", "--home", str(tmp_path / "home"), "list"],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert listing.splitlines()[1].split()[:2] == ["admin", "admin"]


def _started(url: str) -> tuple[int, int]:
    """(requests in flight, /v1/infer requests finished), from the server's own metrics."""
    text = httpx.get(url + "/metrics", timeout=5).text
    in_flight = float(re.search(r"^lanai_requests_in_flight (\S+)", text, re.M).group(1)) - 1  # not this one
    done = sum(float(v) for v in re.findall(r'^lanai_requests_total\{endpoint="/v1/infer".*\} (\S+)', text, re.M))
    return int(in_flight), int(done)


def test_sigterm_finishes_in_flight_requests_then_exits_0(serve: ServeProcess) -> None:
    serve.wait_ready()
    # PNGs decode slowly (no reduced-scale decoding as for JPEG): the requests stay in flight a while.
    big = encode(np.asarray(Image.fromarray(photo("astronaut")).resize((1600, 1600))), "PNG")

    async def main() -> tuple[list[int], int]:
        async with httpx.AsyncClient(base_url=serve.url, timeout=60) as client:
            calls = [asyncio.ensure_future(client.post("/v1/infer", files={"file": ("a.png", big)})) for _ in range(16)]
            while sum(await asyncio.to_thread(_started, serve.url)) < 16:  # every request has reached the server
                await asyncio.sleep(0.01)
            in_flight, _ = await asyncio.to_thread(_started, serve.url)
            serve.proc.send_signal(signal.SIGTERM)
            return [r.status_code for r in await asyncio.gather(*calls)], in_flight

    codes, in_flight = asyncio.run(main())
    assert in_flight > 0  # the signal really came while requests were being served
    assert codes == [200] * 16
    assert serve.proc.wait(timeout=30) == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(serve.url + "/health", timeout=2)


def _grpc_calls(url: str) -> tuple[int, int]:
    """(gRPC calls in flight, ModelInfer calls finished), from the server's own metrics."""
    text = httpx.get(url + "/metrics", timeout=5).text
    in_flight = float(re.search(r"^lanai_grpc_requests_in_flight (\S+)", text, re.M).group(1))
    done = sum(float(v) for v in re.findall(r"^lanai_grpc_requests_total\{.*ModelInfer.*\} (\S+)", text, re.M))
    return int(in_flight), int(done)


def test_sigterm_drains_the_grpc_door_too(serve: ServeProcess) -> None:
    """Calls in flight on the gRPC door finish with OK after SIGTERM, and the process still exits 0."""
    triton = pytest.importorskip("tritonclient.grpc", reason="the test extra installs tritonclient[grpc]")
    from concurrent.futures import ThreadPoolExecutor

    serve.wait_ready()
    found = [m for m in (re.search(r"gRPC \(Open Inference Protocol\) on (\S+)", line) for line in serve.log) if m]
    address = found[0].group(1)
    # 32 images a call: long enough that calls are still in flight when the signal comes (with 8, a fast
    # run finished all eight before it, and the test proved nothing)
    batch = np.random.default_rng(0).standard_normal((32, 3, 224, 224)).astype(np.float32)
    arrived = threading.Barrier(9)

    def call(_: int) -> tuple[int, float]:
        with triton.InferenceServerClient(address) as client:
            tensor = triton.InferInput("input", list(batch.shape), "FP32")
            tensor.set_data_from_numpy(batch)
            arrived.wait(30)
            result = client.infer("efficientnet-lite0", [tensor], client_timeout=60)
            return int(result.as_numpy("logits").shape[0]), time.monotonic()

    with ThreadPoolExecutor(8) as pool:
        calls = [pool.submit(call, i) for i in range(8)]
        arrived.wait(30)
        while sum(_grpc_calls(serve.url)) < 8:  # every call has reached the server (in flight or done)
            time.sleep(0.01)
        in_flight, _ = _grpc_calls(serve.url)
        serve.proc.send_signal(signal.SIGTERM)
        answers = [c.result(timeout=60) for c in calls]
    assert in_flight > 0  # the signal really came while calls were being served
    assert [rows for rows, _ in answers] == [32] * 8
    assert serve.proc.wait(timeout=30) == 0
    assert any("draining" in line for line in serve.log)
