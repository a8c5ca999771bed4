"""Fixtures for the store tests: a store in tmp_path, small fake model files, a fake hook."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from store_helpers import InspectFn, MakeLabels, MakeModel, fake_inspect

from lanai.store import Store


@pytest.fixture
def inspect() -> InspectFn:
    return fake_inspect


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


@pytest.fixture
def make_model(tmp_path: Path) -> MakeModel:
    """Write a fake model file (each in its own directory) and return its path."""
    counter = itertools.count()

    def make(classes: int = 3, *, salt: str = "", filename: str = "model.onnx") -> Path:
        directory = tmp_path / "src" / str(next(counter))
        directory.mkdir(parents=True)
        path = directory / filename
        path.write_text(f"fake-model {classes} {salt}\n")
        return path

    return make


@pytest.fixture
def make_labels(tmp_path: Path) -> MakeLabels:
    """Write a labels file with exactly these contents and return its path."""
    counter = itertools.count()

    def make(contents: str | bytes) -> Path:
        path = tmp_path / f"labels-{next(counter)}.txt"
        data = contents.encode("utf-8") if isinstance(contents, str) else contents
        path.write_bytes(data)
        return path

    return make
