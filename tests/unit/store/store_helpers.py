"""Helpers shared by the store tests (a uniquely named module, so no clash with other conftests)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lanai.types import TensorSpec

Specs = tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]
InspectFn = Callable[[Path], Specs]
MakeModel = Callable[..., Path]
MakeLabels = Callable[[str | bytes], Path]


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


def snapshot(directory: Path) -> dict[str, bytes | None]:
    """Every path under ``directory`` with its bytes (None for directories)."""
    if not directory.exists():
        return {}
    return {str(p.relative_to(directory)): None if p.is_dir() else p.read_bytes() for p in sorted(directory.rglob("*"))}
