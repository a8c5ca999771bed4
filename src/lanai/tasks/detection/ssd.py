"""SSD-style detectors whose graph does the post-processing (TensorFlow Object Detection API exports):
``num_detections`` [N], ``detection_boxes`` [N, K, 4] (ymin, xmin, ymax, xmax as fractions of the
input), ``detection_scores`` [N, K], ``detection_classes`` [N, K] (class ids from 1; 0 is background).
Outputs are told apart by name (tf2onnx keeps TensorFlow's, with a ``:0`` suffix)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lanai.tasks.detection.base import Decoder
from lanai.tasks.detection.nms import Candidates
from lanai.types import ImagePreprocess, TensorSpec

__all__ = ["TfObjectDetection", "ROLES"]

ROLES = ("num_detections", "detection_boxes", "detection_scores", "detection_classes")


def _roles(names: Sequence[str]) -> dict[str, str] | None:
    """Role → output name, when every role is found once."""
    found: dict[str, str] = {}
    for role in ROLES:
        matches = [name for name in names if role in name.lower()]
        if len(matches) != 1:
            return None
        found[role] = matches[0]
    return found


class TfObjectDetection(Decoder):
    name = "ssd"
    summary = "TF Object Detection API post-processed outputs: num_detections, detection_boxes/scores/classes"
    preprocess = ImagePreprocess(resize=300, crop=300, layout="NHWC", dtype="uint8", fit="stretch")
    label_offset = 1

    def fits(self, outputs: Sequence[TensorSpec]) -> bool:
        return len(outputs) == 4 and _roles([spec.name for spec in outputs]) is not None

    def decode(
        self, outputs: Mapping[str, np.ndarray], size: tuple[int, int], options: Mapping[str, Any]
    ) -> Candidates:
        roles = _roles(list(outputs))
        assert roles is not None  # checked when the model was added and loaded
        count = outputs[roles["num_detections"]].reshape(-1).astype(np.int64)
        yx = outputs[roles["detection_boxes"]].astype(np.float32)
        scores = outputs[roles["detection_scores"]].astype(np.float32)
        classes = np.rint(outputs[roles["detection_classes"]]).astype(np.int64)
        width, height = size
        boxes = yx[..., [1, 0, 3, 2]] * np.array([width, height, width, height], np.float32)
        slots = np.arange(scores.shape[1])[None, :]
        scores = np.where(slots < count[:, None], scores, 0.0).astype(np.float32)  # past num_detections: padding
        return Candidates(boxes, scores, classes)
