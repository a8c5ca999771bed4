"""YOLO heads, as most users export them.

- ``yolov5`` (also v7 and YOLOX-style exports with objectness): one output [N, A, 5 + C]: centre x,
  centre y, width, height (input pixels, or 0–1), objectness, then C class scores; score = objectness ×
  the best class's score.
- ``yolov8`` (also v9–v11, no objectness): one output [N, 4 + C, A] as Ultralytics exports it, or
  [N, A, 4 + C]; with ``--option keypoints=K`` (pose models) K × (x, y, visibility) follow the classes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lanai.tasks.detection.base import Decoder, option, sigmoid_if_logits
from lanai.tasks.detection.nms import Candidates
from lanai.types import ImagePreprocess, TensorSpec

__all__ = ["YoloV5", "YoloV8", "centre_to_corners"]

_PREPROCESS = ImagePreprocess(resize=640, crop=640, mean=(0.0,) * 3, std=(255.0,) * 3, fit="letterbox")


def centre_to_corners(boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[..., 4] cx, cy, w, h → x1, y1, x2, y2 in pixels; boxes all within 0–1.5 are taken as fractions."""
    boxes = boxes.astype(np.float32, copy=False)
    if boxes.size and float(np.abs(boxes).max()) <= 1.5:
        boxes = boxes * np.array([size[0], size[1]] * 2, np.float32)
    half = boxes[..., 2:4] / 2
    return np.concatenate([boxes[..., 0:2] - half, boxes[..., 0:2] + half], axis=-1)


def _single(outputs: Sequence[TensorSpec]) -> tuple[int, ...] | None:
    return tuple(outputs[0].shape) if len(outputs) == 1 and len(outputs[0].shape) == 3 else None


class YoloV5(Decoder):
    name = "yolov5"
    summary = "YOLOv5/v7 head with objectness: [N, A, 5 + classes]"
    preprocess = _PREPROCESS

    def fits(self, outputs: Sequence[TensorSpec]) -> bool:
        shape = _single(outputs)
        return shape is not None and (shape[2] == -1 or shape[2] > 5)

    def claims(self, outputs: Sequence[TensorSpec], classes: int | None) -> bool:
        shape = _single(outputs)
        if shape is None or shape[1] < shape[2] or not self.fits(outputs):
            return False  # [N, small, large] is YOLOv8's layout
        return classes is not None and shape[2] == 5 + classes

    def decode(
        self, outputs: Mapping[str, np.ndarray], size: tuple[int, int], options: Mapping[str, Any]
    ) -> Candidates:
        raw = next(iter(outputs.values()))
        cls = sigmoid_if_logits(raw[..., 5:])
        best = cls.argmax(axis=-1)
        score = sigmoid_if_logits(raw[..., 4]) * np.take_along_axis(cls, best[..., None], axis=-1)[..., 0]
        return Candidates(centre_to_corners(raw[..., :4], size), score, best)


class YoloV8(Decoder):
    name = "yolov8"
    summary = "YOLOv8-style head without objectness: [N, 4 + classes, A] (or [N, A, 4 + classes])"
    preprocess = _PREPROCESS

    def fits(self, outputs: Sequence[TensorSpec]) -> bool:
        shape = _single(outputs)
        return shape is not None and (min(shape[1:]) == -1 or min(shape[1:]) > 4)

    def claims(self, outputs: Sequence[TensorSpec], classes: int | None) -> bool:
        shape = _single(outputs)
        if shape is None or not self.fits(outputs) or -1 in shape[1:]:
            return False
        if shape[1] < shape[2]:
            return True  # channels first: Ultralytics' own layout
        return classes is not None and shape[2] == 4 + classes

    def decode(
        self, outputs: Mapping[str, np.ndarray], size: tuple[int, int], options: Mapping[str, Any]
    ) -> Candidates:
        raw = next(iter(outputs.values()))
        if raw.shape[1] < raw.shape[2]:
            raw = raw.transpose(0, 2, 1)  # [N, A, 4 + C (+ 3K)]
        points = option(options, "keypoints", 0)
        end = raw.shape[2] - 3 * points
        cls = sigmoid_if_logits(raw[..., 4:end])
        best = cls.argmax(axis=-1)
        score = np.take_along_axis(cls, best[..., None], axis=-1)[..., 0]
        keypoints = None
        if points:
            keypoints = raw[..., end:].reshape(*raw.shape[:2], points, 3).astype(np.float32)
            keypoints[..., 2] = sigmoid_if_logits(keypoints[..., 2])
        return Candidates(centre_to_corners(raw[..., :4], size), score, best, keypoints)
