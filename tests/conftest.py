"""Fixtures shared by every test: real photos, small real ONNX models, and a real server on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lanai.config import Settings
from lanai.dataplane import DataPlane

from support import RunningServer, ServerThread, encode, make_store, photo, write_tiny_classifier


@pytest.fixture(scope="session")
def photos() -> dict[str, bytes]:
    """Real photos from scikit-image, as JPEG (quality 90) and one PNG."""
    found = {name: encode(photo(name), quality=90) for name in ("chelsea", "coffee", "astronaut", "camera")}
    found["chelsea.png"] = encode(photo("chelsea"), "PNG")
    return found


@pytest.fixture(scope="session")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    labels = root / "labels.txt"
    labels.write_text("apple\nbanana\ncherry\ndate\nelder\n", encoding="utf-8")
    return {
        "tiny": write_tiny_classifier(root / "tiny.onnx"),
        "tiny-fixed": write_tiny_classifier(root / "tiny-fixed.onnx", fixed_batch=True),
        "labels": labels,
    }


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, model_files: dict[str, Path]) -> Iterator[RunningServer]:
    """One server for the integration tests that do not change its models."""
    store = make_store(tmp_path_factory.mktemp("store"), model_files)
    settings = Settings(home=store.root, max_body_bytes=2 * 2**20, max_image_pixels=20_000_000, intra_op_threads=2)
    host = DataPlane(store, settings)
    with ServerThread(host, settings) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield RunningServer(url, host, client)
