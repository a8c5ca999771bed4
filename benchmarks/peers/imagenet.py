"""What both peer servers do to a photo before and after the model, written the way a tutorial does it:
Pillow decodes, numpy resizes the shorter side to 256, centre-crops 224 and normalises with ImageNet's
mean and std (the preprocessing benchmarks/peers.py gives lanai too); softmax and the top 5 after.

``PEER_DECODE=lanai`` decodes the way lanai does instead (libjpeg's DCT scaling through ``Image.draft``,
then one resampling of just the region the centre crop keeps), so that decoding costs the same on both
sides and what is left to compare is the serving. ``PEER_THREADS=granted`` sizes onnxruntime's intra-op
pool to the CPUs this process may run on (its affinity), as lanai sizes its own; by default onnxruntime
takes one thread per physical core whatever the affinity, and pinned to one core its threads spin in turn
there (measured here: 8.0 ms a run against 3.9 ms with one thread).
"""

from __future__ import annotations

import io
import os

import numpy as np
import onnxruntime as ort
from PIL import Image

RESIZE, CROP = 256, 224
MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)
STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)
LANAI_DECODE = os.environ.get("PEER_DECODE") == "lanai"


def session_options() -> ort.SessionOptions | None:
    """None (onnxruntime's defaults), or with ``PEER_THREADS=granted`` one intra-op thread per CPU granted."""
    if os.environ.get("PEER_THREADS") != "granted":
        return None
    options = ort.SessionOptions()
    options.intra_op_num_threads = len(os.sched_getaffinity(0))
    return options


def load_plain(data: bytes) -> Image.Image:
    """Decode at full size, resize the shorter side to 256, centre-crop 224."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    width, height = img.size
    scale = RESIZE / min(width, height)
    img = img.resize((round(width * scale), round(height * scale)), Image.Resampling.BILINEAR)
    left, top = (img.width - CROP) // 2, (img.height - CROP) // 2
    return img.crop((left, top, left + CROP, top + CROP))


def load_reduced(data: bytes) -> Image.Image:
    """Decode at the smallest DCT scale that keeps the shorter side >= 256, then resample only the crop."""
    encoded = Image.open(io.BytesIO(data))
    width, height = encoded.size
    scale = RESIZE / min(width, height)
    encoded.draft("RGB", (int(width * scale + 0.999), int(height * scale + 0.999)))
    img = encoded.convert("RGB")
    width, height = img.size
    side = CROP * min(width, height) / RESIZE  # the crop, in source pixels
    left, top = (width - side) / 2, (height - side) / 2
    return img.resize((CROP, CROP), Image.Resampling.BILINEAR, box=(left, top, left + side, top + side))


def preprocess(data: bytes) -> np.ndarray:
    """The model's input for one photo: [1, 3, 224, 224] float32."""
    img = load_reduced(data) if LANAI_DECODE else load_plain(data)
    x = (np.asarray(img, dtype=np.float32) - MEAN) / STD
    return x.transpose(2, 0, 1)[np.newaxis]


def load_labels() -> list[str]:
    with open(os.environ["PEER_LABELS"], encoding="utf-8") as f:
        return [line.strip() for line in f]


def top5(logits: np.ndarray, labels: list[str]) -> dict[str, list[dict[str, object]]]:
    """Softmax (in float64) and the five best classes."""
    scores = logits.astype(np.float64)
    probs = np.exp(scores - scores.max())
    probs /= probs.sum()
    best = np.argsort(-probs)[:5]
    return {"predictions": [{"label": labels[i], "index": int(i), "score": float(probs[i])} for i in best]}
