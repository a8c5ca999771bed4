"""The Open Inference Protocol v2 REST surface, as Triton/KServe clients use it."""

from __future__ import annotations

import json

import numpy as np

from support import RunningServer, tiny_logits


def test_server_health_and_metadata(server: RunningServer) -> None:
    c = server.client
    assert c.get("/v2/health/live").json() == {"live": True}
    assert c.get("/v2/health/ready").json() == {"ready": True}
    meta = c.get("/v2").json()
    assert meta["name"] == "lanai" and {"binary_tensor_data", "model_repository"} <= set(meta["extensions"])


def test_model_metadata_and_ready(server: RunningServer) -> None:
    c = server.client
    meta = c.get("/v2/models/efficientnet-lite0").json()
    assert meta["platform"] == "onnx_onnxv1" and meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 3, 224, 224]}]
    assert meta["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 1000]}]
    assert meta["parameters"]["execution_provider"] == "CPUExecutionProvider"
    assert c.get("/v2/models/efficientnet-lite0/versions/1").status_code == 200
    assert c.get("/v2/models/tiny/ready").json() == {"name": "tiny", "ready": True}
    assert c.get("/v2/models/tiny/versions/1/ready").status_code == 200
    fixed = c.get("/v2/models/tiny-fixed").json()
    assert fixed["inputs"][0]["shape"] == [1, 3, 8, 8] and fixed["parameters"]["max_batch_size"] == 1


def test_infer_json(server: RunningServer) -> None:
    x = np.random.default_rng(2).random((3, 3, 8, 8), dtype=np.float32)
    doc = {
        "id": "req-1",
        "inputs": [{"name": "input", "shape": [3, 3, 8, 8], "datatype": "FP32", "data": x.ravel().tolist()}],
    }
    r = server.client.post("/v2/models/tiny/infer", json=doc)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["model_name"] == "tiny" and out["model_version"] == "1" and out["id"] == "req-1"
    assert out["outputs"][0]["shape"] == [3, 5] and out["outputs"][0]["datatype"] == "FP32"
    np.testing.assert_allclose(np.array(out["outputs"][0]["data"]).reshape(3, 5), tiny_logits(x), rtol=1e-5, atol=1e-5)


def test_infer_binary_both_ways(server: RunningServer) -> None:
    x = np.random.default_rng(3).random((2, 3, 8, 8), dtype=np.float32)
    binary = {"binary_data_size": x.nbytes}
    header = json.dumps({
        "inputs": [{"name": "input", "shape": [2, 3, 8, 8], "datatype": "FP32", "parameters": binary}],
        "outputs": [{"name": "logits", "parameters": {"binary_data": True}}],
    }).encode()  # fmt: skip
    r = server.client.post(
        "/v2/models/tiny/versions/1/infer",
        content=header + x.tobytes(),
        headers={"Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 200, r.text
    length = int(r.headers["Inference-Header-Content-Length"])
    out = json.loads(r.content[:length])["outputs"][0]
    assert out["parameters"]["binary_data_size"] == 2 * 5 * 4
    y = np.frombuffer(r.content[length:], dtype=np.float32).reshape(2, 5)
    np.testing.assert_allclose(y, tiny_logits(x), rtol=1e-5, atol=1e-5)


def test_infer_raw_body(server: RunningServer) -> None:
    x = np.random.default_rng(4).random((1, 3, 8, 8), dtype=np.float32)
    r = server.client.post(
        "/v2/models/tiny-fixed/infer", content=x.tobytes(), headers={"Inference-Header-Content-Length": "0"}
    )
    assert r.status_code == 200, r.text
    length = int(r.headers["Inference-Header-Content-Length"])
    np.testing.assert_allclose(
        np.frombuffer(r.content[length:], dtype=np.float32), tiny_logits(x)[0], rtol=1e-5, atol=1e-5
    )


def test_fixed_batch_model_takes_a_batch_of_several(server: RunningServer) -> None:
    x = np.random.default_rng(5).random((3, 3, 8, 8), dtype=np.float32)
    doc = {"inputs": [{"name": "input", "shape": [3, 3, 8, 8], "datatype": "FP32", "data": x.ravel().tolist()}]}
    r = server.client.post("/v2/models/tiny-fixed/infer", json=doc)
    assert r.status_code == 400 and "shape" in r.json()["error"]  # its batch axis is fixed at 1
    doc["inputs"][0]["shape"] = [1, 3, 8, 8]
    doc["inputs"][0]["data"] = x[:1].ravel().tolist()
    assert server.client.post("/v2/models/tiny-fixed/infer", json=doc).status_code == 200


def test_repository_index(server: RunningServer) -> None:
    r = server.client.post("/v2/repository/index", json={})
    assert r.status_code == 200
    entries = {e["name"]: e for e in r.json()}
    assert set(entries) == {"efficientnet-lite0", "tiny", "tiny-fixed"}
    assert entries["tiny"] == {"name": "tiny", "version": "1", "state": "READY", "reason": ""}
    assert server.client.post("/v2/repository/index").status_code == 200  # an empty body is allowed
