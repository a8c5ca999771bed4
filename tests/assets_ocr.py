"""Real OCR assets for the tests: the PP-OCR models out of rapidocr's wheel (ASSETS.md), fetched once from
PyPI into the test cache and never installed (rapidocr pulls OpenCV), and scikit-image's scanned page."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

RAPIDOCR_WHEEL = "rapidocr==3.10.0"
PPOCR_FILES = ("PP-OCRv6_det_small.onnx", "ch_ppocr_mobile_v2.0_cls_mobile.onnx", "PP-OCRv6_rec_small.onnx")

PAGE_LINES = (
    "Region-based segmentation",
    "Let us first determine markers of the coins and the",
    "background. These markers are pixels that we can label",
    "unambiguously as either object or background. Here,",
    "the markers are found at the two extreme parts of the",
    "histogram of grey values:",
    ">>> markers = np.zeros_like(coins)",
)
"""What scikit-image's ``page.png`` says, line by line (read by eye from the image)."""


def ppocr_models() -> Path | None:
    """A folder with the three PP-OCR ONNX models, or None if they cannot be had (no network, no pip)."""
    cache = Path(os.environ.get("LANAI_TEST_CACHE", Path.home() / ".cache" / "lanai-tests")) / "rapidocr-3.10.0"
    if all((cache / name).is_file() for name in PPOCR_FILES):
        return cache
    with tempfile.TemporaryDirectory() as tmp:
        fetch = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", RAPIDOCR_WHEEL, "-d", tmp]
        if subprocess.run(fetch, capture_output=True).returncode != 0:
            return None
        wheel = next(Path(tmp).glob("rapidocr-*.whl"), None)
        if wheel is None:
            return None
        cache.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as archive:
            for name in PPOCR_FILES:
                partial = cache / f"{name}.part"
                partial.write_bytes(archive.read(f"rapidocr/models/{name}"))
                partial.replace(cache / name)
    return cache


def page_pixels() -> np.ndarray:
    """scikit-image's scanned page (grey, 191 × 384)."""
    from skimage import data

    return np.asarray(data.page())


def character_accuracy(found: str, expected: str) -> float:
    """1 − (edit distance / expected length), over characters."""
    previous = list(range(len(expected) + 1))
    for i, a in enumerate(found, 1):
        current = [i]
        for j, b in enumerate(expected, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b)))
        previous = current
    return 1.0 - previous[-1] / max(len(expected), 1)
