"""Servers of their own: a full queue answers 503 at once; model swaps never interrupt serving."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from lanai.bundled import inspector
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.store import Store
from lanai.types import BatchingConfig

from support import TINY_PREPROCESS, ServerThread, make_store


@pytest.fixture
def own_store(tmp_path: Path, model_files: dict[str, Path]) -> Store:
    return make_store(tmp_path / "store", model_files)


def test_full_queue_answers_503_with_retry_after(
    own_store: Store, model_files: dict[str, Path], photos: dict[str, bytes]
) -> None:
    own_store.add(
        model_files["tiny"].parent / "tiny.onnx", name="tiny", task="classify", inspect=inspector("onnx"),
        preprocess=TINY_PREPROCESS, batching=BatchingConfig(max_batch_size=1, max_queue_delay_us=0, max_queue_size=1),
        activate=True,
    )  # fmt: skip
    # The bundled model with a queue of one: 24 requests at once cannot all wait.
    manifest = own_store.manifest("efficientnet-lite0")
    own_store.add(
        own_store.file_path(manifest, "model"), name="efficientnet-lite0", task="classify",
        labels=own_store.file_path(manifest, "labels"), preprocess=manifest.preprocess,
        batching=BatchingConfig(max_batch_size=1, max_queue_delay_us=0, max_queue_size=1),
        inspect=inspector("onnx"), activate=True,
    )  # fmt: skip
    settings = Settings(home=own_store.root, intra_op_threads=1)

    async def burst(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            return await asyncio.gather(*(
                client.post("/v1/models/efficientnet-lite0/classify", files={"file": ("c.jpg", photos["chelsea"])})
                for _ in range(24)
            ))  # fmt: skip

    with ServerThread(DataPlane(own_store, settings), settings) as url:
        responses = asyncio.run(burst(url))
        codes = [r.status_code for r in responses]
        assert set(codes) == {200, 503}, codes
        refused = [r for r in responses if r.status_code == 503]
        assert all(r.headers["Retry-After"].isdigit() and "queue is full" in r.json()["error"] for r in refused)
        after = httpx.post(url + "/v1/models/efficientnet-lite0/classify", files={"file": ("c.jpg", photos["chelsea"])})
        assert after.status_code == 200
        metrics = httpx.get(url + "/metrics").text
        assert (
            'lanai_requests_total{endpoint="/v1/models/{model}/classify",model="efficientnet-lite0",status="503"}'
            in metrics
        )


def test_a_full_queue_refuses_before_the_body_is_sent(own_store: Store, photos: dict[str, bytes]) -> None:
    """A client that asks `Expect: 100-continue` (.NET's HttpWebRequest and curl do, for larger uploads)
    hears 503 instead of "100 Continue" while the queue is full, and never uploads its photo."""
    manifest = own_store.manifest("efficientnet-lite0")
    own_store.add(
        own_store.file_path(manifest, "model"), name="efficientnet-lite0", task="classify",
        labels=own_store.file_path(manifest, "labels"), preprocess=manifest.preprocess,
        batching=BatchingConfig(max_batch_size=1, max_queue_delay_us=0, max_queue_size=1, instances=1),
        inspect=inspector("onnx"), activate=True,
    )  # fmt: skip
    settings = Settings(home=own_store.root, intra_op_threads=1)
    plane = DataPlane(own_store, settings)
    with ServerThread(plane, settings) as url:
        batcher = plane.models["efficientnet-lite0"].batcher
        gate = threading.Event()  # holds the model's runs (the real model runs once it opens)
        run, run_alone = batcher._run, batcher._run_alone
        batcher._run = lambda inputs: (gate.wait(30), run(inputs))[1]
        batcher._run_alone = lambda inputs: (gate.wait(30), run_alone(inputs))[1]

        def classify() -> int:
            files = {"file": ("c.jpg", photos["chelsea"])}
            return httpx.post(url + "/v1/models/efficientnet-lite0/classify", files=files, timeout=60).status_code

        with ThreadPoolExecutor(2) as pool:
            running = pool.submit(classify)  # held in the model
            while batcher.in_flight < 1:
                time.sleep(0.01)
            waiting = pool.submit(classify)  # the queue's one place
            while batcher.queue_depth < 1:
                time.sleep(0.01)
            host, port = url.removeprefix("http://").rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=10) as probe:
                probe.sendall(
                    b"POST /v1/models/efficientnet-lite0/classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                    + f"Content-Length: {len(photos['chelsea'])}\r\nExpect: 100-continue\r\n\r\n".encode()
                )
                answer = probe.recv(65536)
            gate.set()
            assert (running.result(), waiting.result()) == (200, 200)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503"), answer
    assert b"\r\nretry-after: " in head.lower(), head
    assert "queue is full" in json.loads(body)["error"], body


def test_load_swaps_versions_and_a_failed_load_keeps_the_old(own_store: Store, model_files: dict[str, Path]) -> None:
    settings = Settings(home=own_store.root)
    host = DataPlane(own_store, settings)
    with ServerThread(host, settings) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/v2/models/tiny").json()["versions"] == ["1"]
        v2 = own_store.add(model_files["tiny"], name="tiny", task="classify", preprocess=TINY_PREPROCESS,
                           inspect=inspector("onnx"), activate=True)  # fmt: skip
        assert client.get("/v2/models/tiny").json()["versions"] == ["1"]  # not until it is loaded
        loaded = client.post("/v2/repository/models/tiny/load", json={})  # the body tritonclient sends
        assert loaded.json() == {"name": "tiny", "load": True}
        assert client.get("/v2/models/tiny").json()["versions"] == [str(v2.version)]

        # A version whose runtime options are wrong cannot load: the old one keeps serving.
        own_store.add(model_files["tiny"], name="tiny", task="classify", preprocess=TINY_PREPROCESS,
                      backend_options={"graph_optimization": "warp-speed"}, inspect=inspector("onnx"),
                      activate=True)  # fmt: skip
        r = client.post("/v2/repository/models/tiny/load")
        assert r.status_code == 400 and "warp-speed" in r.json()["error"]
        assert client.get("/v2/models/tiny").json()["versions"] == [str(v2.version)]
        x = {"inputs": [{"name": "input", "shape": [1, 3, 8, 8], "datatype": "FP32", "data": [0.1] * 192}]}
        assert client.post("/v2/models/tiny/infer", json=x).status_code == 200

        assert client.post("/v2/repository/models/tiny/unload").json() == {"name": "tiny", "unload": True}
        assert client.post("/v2/models/tiny/infer", json=x).status_code == 404
        index = {e["name"]: e for e in client.post("/v2/repository/index").json()}
        assert index["tiny"]["state"] == "UNAVAILABLE"
        assert client.post("/v2/repository/models/nope/load").status_code == 404
        config = client.post("/v2/repository/models/tiny/load", json={"parameters": {"config": "{}"}})
        assert config.status_code == 400 and "takes no load parameters (config)" in config.json()["error"]
