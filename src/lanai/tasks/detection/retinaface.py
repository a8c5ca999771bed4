"""RetinaFace heads (anchor-based face detectors, e.g. RetinaFace MobileNet-0.25 / ResNet-50):
``loc`` [N, A, 4], ``conf`` [N, A, 2] (background, face) and ``landmarks`` [N, A, 10] (five points:
eyes, nose tip, mouth corners), decoded against prior boxes laid on the input: at strides 8, 16 and
32, two square priors per cell (16 and 32, 64 and 128, 256 and 512 pixels), with variances 0.1 (centre)
and 0.2 (size)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from lanai.tasks.detection.base import Decoder, softmax
from lanai.tasks.detection.nms import Candidates
from lanai.types import ImagePreprocess, TensorSpec

__all__ = ["RetinaFace", "priors"]

STEPS = (8, 16, 32)
SIZES = ((16, 32), (64, 128), (256, 512))
CENTRE_VARIANCE, SIZE_VARIANCE = 0.1, 0.2


@lru_cache(maxsize=8)
def priors(width: int, height: int) -> np.ndarray:
    """[A, 4] centre x, centre y, width, height in input pixels, in the head's order (stride by stride,
    row by row, cell by cell, size by size)."""
    levels = []
    for step, sizes in zip(STEPS, SIZES):
        rows, cols = math.ceil(height / step), math.ceil(width / step)
        ys, xs = np.meshgrid((np.arange(rows) + 0.5) * step, (np.arange(cols) + 0.5) * step, indexing="ij")
        centres = np.stack([xs.ravel(), ys.ravel()], axis=-1)  # [rows * cols, 2]
        centres = np.repeat(centres, len(sizes), axis=0)
        wh = np.tile(np.repeat(np.asarray(sizes, np.float32), 2).reshape(-1, 2), (rows * cols, 1))
        levels.append(np.concatenate([centres, wh], axis=-1))
    found = np.concatenate(levels).astype(np.float32)
    found.setflags(write=False)
    return found


class RetinaFace(Decoder):
    name = "retinaface"
    summary = "RetinaFace: loc [N, A, 4], conf [N, A, 2], landmarks [N, A, 10] with prior boxes"
    preprocess = ImagePreprocess(resize=640, crop=640, mean=(104.0, 117.0, 123.0), std=(1.0,) * 3,
                                 fit="letterbox", channel_order="BGR")  # fmt: skip
    labels = ("face",)

    def fits(self, outputs: Sequence[TensorSpec]) -> bool:
        return sorted(spec.shape[-1] for spec in outputs if len(spec.shape) == 3) == [2, 4, 10]

    def decode(
        self, outputs: Mapping[str, np.ndarray], size: tuple[int, int], options: Mapping[str, Any]
    ) -> Candidates:
        by_width = {array.shape[-1]: array for array in outputs.values()}
        loc, conf, marks = by_width[4], by_width[2], by_width[10]
        anchors = priors(*size)
        if len(anchors) != loc.shape[1]:
            raise ValueError(f"the model gave {loc.shape[1]} boxes for a {size[0]}×{size[1]} input; "
                             f"RetinaFace's priors are {len(anchors)}")  # fmt: skip
        centre, wh = anchors[:, :2], anchors[:, 2:]
        xy = centre + loc[..., :2] * CENTRE_VARIANCE * wh
        half = wh * np.exp(loc[..., 2:] * SIZE_VARIANCE) / 2
        boxes = np.concatenate([xy - half, xy + half], axis=-1).astype(np.float32)
        probs = conf.astype(np.float32)
        if probs.size and float(np.abs(probs.sum(axis=-1) - 1.0).max()) > 1e-3:
            probs = softmax(probs)
        points = centre[:, None, :] + marks.reshape(*marks.shape[:2], 5, 2) * CENTRE_VARIANCE * wh[:, None, :]
        keypoints = np.concatenate([points, np.ones((*points.shape[:3], 1))], axis=-1).astype(np.float32)
        classes = np.zeros(probs.shape[:2], np.int64)
        return Candidates(boxes, probs[..., 1], classes, keypoints)
