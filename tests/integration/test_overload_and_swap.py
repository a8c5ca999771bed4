"""Servers of their own: a full queue answers 503 at once; model swaps never interrupt serving."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable
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


def _probe_with_expect_continue(url: str, path: str, length: int) -> bytes:
    """Send only a POST's head, with `Expect: 100-continue`, and return the first answer."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as probe:
        probe.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n".encode()
            + f"Content-Length: {length}\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        return probe.recv(65536)


def _with_full_queue(plane: DataPlane, name: str, send: Callable[[], int], probe: Callable[[], bytes]) -> bytes:
    """Hold model ``name``'s runs (its real runs go on once released), fill its queue of one place with
    two ``send``s, and return what ``probe`` got meanwhile; both sends must then be answered 200."""
    batcher = plane.models[name].batcher
    gate = threading.Event()
    run, run_alone = batcher._run, batcher._run_alone
    batcher._run = lambda inputs: (gate.wait(30), run(inputs))[1]
    batcher._run_alone = lambda inputs: (gate.wait(30), run_alone(inputs))[1]
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(send)  # held in the model
        while batcher.in_flight < 1:
            time.sleep(0.01)
        waiting = pool.submit(send)  # the queue's one place
        while batcher.queue_depth < 1:
            time.sleep(0.01)
        try:
            return probe()
        finally:
            gate.set()
            assert (running.result(), waiting.result()) == (200, 200)


def _refused_before_the_body(answer: bytes) -> dict:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503"), answer  # not "100 Continue": the body is never sent
    assert b"\r\nretry-after: " in head.lower(), head
    document: dict = json.loads(body)
    assert "queue is full" in document["error"], body
    return document


def test_a_full_queue_refuses_before_the_body_is_sent(own_store: Store, photos: dict[str, bytes]) -> None:
    """A client that asks `Expect: 100-continue` (.NET's HttpWebRequest and curl do, for larger uploads)
    hears 503 instead of "100 Continue" while the queue is full, and never uploads its photo: on the task
    endpoints, Triton's infer, and a pipeline whose first step is that model."""
    manifest = own_store.manifest("efficientnet-lite0")
    own_store.add(
        own_store.file_path(manifest, "model"), name="efficientnet-lite0", task="classify",
        labels=own_store.file_path(manifest, "labels"), preprocess=manifest.preprocess,
        batching=BatchingConfig(max_batch_size=1, max_queue_delay_us=0, max_queue_size=1, instances=1),
        inspect=inspector("onnx"), activate=True,
    )  # fmt: skip
    (own_store.root / "pipelines").mkdir()
    (own_store.root / "pipelines" / "look.toml").write_text(
        '[[step]]\nname = "classify"\nmodel = "efficientnet-lite0"\ntask = "classify"\n', encoding="utf-8"
    )
    settings = Settings(home=own_store.root, intra_op_threads=1)
    plane = DataPlane(own_store, settings)
    size = len(photos["chelsea"])
    with ServerThread(plane, settings) as url:

        def classify() -> int:
            files = {"file": ("c.jpg", photos["chelsea"])}
            return httpx.post(url + "/v1/models/efficientnet-lite0/classify", files=files, timeout=60).status_code

        def probes() -> bytes:
            paths = (
                "/v1/models/efficientnet-lite0/classify",
                "/v2/models/efficientnet-lite0/infer",
                "/v1/pipelines/look",
            )
            return b"\0".join(_probe_with_expect_continue(url, path, size) for path in paths)

        answers = _with_full_queue(plane, "efficientnet-lite0", classify, probes).split(b"\0")
    for answer in answers:
        _refused_before_the_body(answer)


def test_deepstack_refuses_before_the_upload_too(tmp_path: Path, photos: dict[str, bytes]) -> None:
    """DeepStack's detection endpoint, on a full queue: 503 before the upload, with Retry-After, in
    DeepStack's answer shape."""
    from assets_vision import write_emitter, yolov8_raw

    labels = tmp_path / "labels.txt"
    labels.write_text("person\nbicycle\ncup\n", encoding="utf-8")
    store = Store(tmp_path / "store")
    store.add(
        write_emitter(tmp_path / "yolo.onnx", {"output0": yolov8_raw([(320, 320, 200, 100, 2, 0.9)])}),
        name="yolo", task="detect", labels=labels, inspect=inspector("onnx"), activate=True,
        batching=BatchingConfig(max_batch_size=1, max_queue_delay_us=0, max_queue_size=1, instances=1),
    )  # fmt: skip
    settings = Settings(home=store.root, intra_op_threads=1, deepstack_detection_model="yolo")
    plane = DataPlane(store, settings)
    with ServerThread(plane, settings) as url:

        def detect() -> int:
            files = {"image": ("c.jpg", photos["chelsea"])}
            return httpx.post(url + "/v1/vision/detection", files=files, timeout=60).status_code

        answer = _with_full_queue(
            plane, "yolo", detect, lambda: _probe_with_expect_continue(url, "/v1/vision/detection", 40_000)
        )
    document = _refused_before_the_body(answer)
    assert document["success"] is False and document["code"] == 503


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
