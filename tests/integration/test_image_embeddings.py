"""embed-image over HTTP: the bundled EfficientNet-Lite0 with its pooled 1280-d features exposed as an
output (its penultimate layer, the input of the classifier's last Gemm), on real photos."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from lanai.bundled import DEFAULT_PREPROCESS, bundled_model_dir, inspector
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.store import Store

from support import ServerThread, encode, photo

onnx = pytest.importorskip("onnx")


def write_feature_model(path: Path) -> Path:
    """The bundled classifier, with the input of its last Gemm (the pooled features) as a second output."""
    model = onnx.load(bundled_model_dir() / "model.onnx")
    gemm = [node for node in model.graph.node if node.op_type == "Gemm"][-1]
    features = onnx.helper.make_node("Identity", [gemm.input[0]], ["features"])
    model.graph.node.append(features)
    model.graph.output.append(onnx.helper.make_tensor_value_info("features", onnx.TensorProto.FLOAT, ["N", 1280]))
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def image_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("image-embed")
    store = Store(root / "store")
    store.add(write_feature_model(root / "features.onnx"), name="imagefeat", task="embed-image",
              preprocess=DEFAULT_PREPROCESS, inspect=inspector("onnx", "embed-image"))  # fmt: skip
    settings = Settings(home=store.root)
    with ServerThread(DataPlane(store, settings), settings) as url:
        yield url


def vector(url: str, image: bytes) -> dict:
    response = httpx.post(f"{url}/v1/models/imagefeat/embed-image", content=image, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_the_same_photo_is_closer_than_a_different_one(image_server: str) -> None:
    cat = vector(image_server, encode(photo("chelsea"), quality=90))
    assert cat["dimensions"] == 1280 and np.linalg.norm(cat["embedding"]) == pytest.approx(1.0, abs=1e-5)
    cat_png = np.array(vector(image_server, encode(photo("chelsea"), "PNG"))["embedding"])
    coffee = np.array(vector(image_server, encode(photo("coffee"), quality=90))["embedding"])
    cat_vec = np.array(cat["embedding"])
    assert cat_vec @ cat_png > 0.95
    assert cat_vec @ coffee < cat_vec @ cat_png - 0.2
    again = vector(image_server, encode(photo("chelsea"), quality=90))
    assert again["cached"] and again["embedding"] == cat["embedding"]


def test_images_through_v1_embeddings_as_data_urls(image_server: str) -> None:
    jpeg = encode(photo("astronaut"), quality=90)
    url = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
    body = httpx.post(f"{image_server}/v1/embeddings", json={"model": "imagefeat", "input": [url]}, timeout=30)
    assert body.status_code == 200, body.text
    route = vector(image_server, jpeg)["embedding"]
    assert body.json()["data"][0]["embedding"] == pytest.approx(route, abs=1e-6)
    bad = httpx.post(f"{image_server}/v1/embeddings", json={"model": "imagefeat", "input": ["not an image!"]})
    assert bad.status_code == 400 and "data URL" in bad.json()["error"]["message"]
