"""Fixtures for the store tests: a store in tmp_path, small fake model files and a fake inspect hook."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from lanai.store import Store
from lanai.types import TensorSpec

Specs = tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]


def fake_inspect(path: Path) -> Specs:
    """Stands in for a backend: a 'model' is the text ``fake-model <classes> ...``."""
    words = path.read_text().split()
    if not words or words[0] != "fake-model":
        raise ValueError("not a fake model")
    classes = int(words[1])
    return (
        (TensorSpec("input", "FP32", (-1, 3, 8, 8)),),
        (TensorSpec("logits", "FP32", (-1, classes)),),
    )


@pytest.fixture
def inspect() -> Callable[[Path], Specs]:
    return fake_inspect


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


@pytest.fixture
def make_model(tmp_path: Path) -> Callable[..., Path]:
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
def make_labels(tmp_path: Path) -> Callable[[str | bytes], Path]:
    """Write a labels file with exactly these contents and return its path."""
    counter = itertools.count()

    def make(contents: str | bytes) -> Path:
        path = tmp_path / f"labels-{next(counter)}.txt"
        data = contents.encode("utf-8") if isinstance(contents, str) else contents
        path.write_bytes(data)
        return path

    return make


def snapshot(directory: Path) -> dict[str, bytes | None]:
    """Every path under ``directory`` with its bytes (None for directories)."""
    if not directory.exists():
        return {}
    return {
        str(p.relative_to(directory)): None if p.is_dir() else p.read_bytes()
        for p in sorted(directory.rglob("*"))
    }
