"""Non-maximum suppression per class, in numpy, and the selection a detector's candidates go through.

Per-class NMS runs as one class-agnostic pass: each class's boxes are moved to a region of their own
(offset by the class index times more than the largest coordinate), so boxes of different classes never
overlap and one greedy pass suppresses only within a class. Each step of the pass compares the best
remaining box with all the others at once, and the pass stops once ``limit`` boxes are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Candidates", "Picked", "iou", "nms", "select"]


@dataclass
class Candidates:
    """A batch of a detector's raw answers, decoded: one row per anchor (or per detection slot)."""

    boxes: np.ndarray
    """[N, A, 4] x1, y1, x2, y2 in the model input's pixels."""
    scores: np.ndarray
    """[N, A] the best class's score, 0–1."""
    classes: np.ndarray
    """[N, A] the best class's index (into the labels)."""
    keypoints: np.ndarray | None = None
    """[N, A, P, 3] x, y (model input pixels) and a score, for models that find points (faces, poses)."""


@dataclass
class Picked:
    """What survived thresholds and NMS, per image, padded to ``limit`` rows: the first ``count[i]`` of
    image ``i`` are its detections, best first."""

    boxes: np.ndarray  # [N, limit, 4]
    scores: np.ndarray  # [N, limit]
    classes: np.ndarray  # [N, limit]
    keypoints: np.ndarray  # [N, limit, P, 3]; P is 0 for models without points
    count: np.ndarray  # [N]

    def rows(self) -> dict[str, np.ndarray]:
        return {"boxes": self.boxes, "scores": self.scores, "classes": self.classes,
                "keypoints": self.keypoints, "count": self.count}  # fmt: skip


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one box [4] with each of ``boxes`` [K, 4] (x1, y1, x2, y2)."""
    width = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    height = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = width * height
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)  # type: ignore[no-any-return]


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, threshold: float, limit: int) -> np.ndarray:
    """Indices of the boxes kept, best first: a box is dropped when it overlaps a better box of the same
    class by more than ``threshold`` IoU. At most ``limit`` are kept."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    span = float(np.abs(boxes).max()) + 1.0
    shifted = boxes + (classes.astype(np.float64) * span)[:, None]
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size and len(keep) < limit:
        best = order[0]
        keep.append(best)
        rest = order[1:]
        order = rest[iou(shifted[best], shifted[rest]) <= threshold]
    return np.asarray(keep, np.int64)


def select(
    found: Candidates,
    *,
    score_threshold: float,
    iou_threshold: float,
    limit: int,
    allowed: np.ndarray | None = None,
    pre_nms: int = 4096,
) -> Picked:
    """Each image's candidates above ``score_threshold`` (of the ``allowed`` classes, if given), the
    ``pre_nms`` best of them through per-class NMS, at most ``limit`` kept."""
    n = len(found.scores)
    points = 0 if found.keypoints is None else found.keypoints.shape[2]
    picked = Picked(
        np.zeros((n, limit, 4), np.float32), np.zeros((n, limit), np.float32), np.zeros((n, limit), np.int64),
        np.zeros((n, limit, points, 3), np.float32), np.zeros(n, np.int64),
    )  # fmt: skip
    passing = found.scores >= score_threshold
    if allowed is not None:
        passing &= np.isin(found.classes, allowed)
    for i in range(n):
        index = np.flatnonzero(passing[i])
        if index.size > pre_nms:
            index = index[np.argpartition(-found.scores[i, index], pre_nms - 1)[:pre_nms]]
        scores = found.scores[i, index]
        keep = index[nms(found.boxes[i, index], scores, found.classes[i, index], iou_threshold, limit)]
        k = len(keep)
        picked.count[i] = k
        picked.boxes[i, :k] = found.boxes[i, keep]
        picked.scores[i, :k] = found.scores[i, keep]
        picked.classes[i, :k] = found.classes[i, keep]
        if found.keypoints is not None:
            picked.keypoints[i, :k] = found.keypoints[i, keep]
    return picked
