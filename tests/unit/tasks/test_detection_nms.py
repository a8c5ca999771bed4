"""Per-class NMS and the selection of a batch's candidates."""

from __future__ import annotations

import numpy as np

from lanai.tasks.detection.nms import Candidates, iou, nms, select


def test_iou() -> None:
    box = np.array([0, 0, 10, 10], np.float32)
    others = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 5, 5]], np.float32)
    np.testing.assert_allclose(iou(box, others), [1.0, 50 / 150, 0.0, 0.25])


def test_nms_suppresses_within_a_class_only_and_keeps_the_best_first() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.8, 0.9, 0.7, 0.3], np.float32)
    classes = np.array([0, 0, 1, 0])
    assert nms(boxes, scores, classes, 0.5, 10).tolist() == [1, 2, 3]  # box 0 loses to box 1; box 2 is class 1
    assert nms(boxes, scores, classes, 0.99, 10).tolist() == [1, 0, 2, 3]  # nothing overlaps that much
    assert nms(boxes, scores, classes, 0.5, 2).tolist() == [1, 2]  # stops at the limit
    assert nms(boxes[:0], scores[:0], classes[:0], 0.5, 10).tolist() == []


def test_select_thresholds_filters_classes_and_pads_each_image() -> None:
    boxes = np.array([[[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]],
                      [[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]]], np.float32)  # fmt: skip
    scores = np.array([[0.9, 0.8, 0.2], [0.1, 0.1, 0.1]], np.float32)
    classes = np.array([[0, 0, 2], [0, 1, 2]])
    points = np.arange(2 * 3 * 2 * 3, dtype=np.float32).reshape(2, 3, 2, 3)
    picked = select(Candidates(boxes, scores, classes, points), score_threshold=0.15, iou_threshold=0.5, limit=4)
    assert picked.count.tolist() == [2, 0]
    assert picked.boxes.shape == (2, 4, 4) and picked.keypoints.shape == (2, 4, 2, 3)
    np.testing.assert_allclose(picked.scores[0, :2], [0.9, 0.2])
    assert picked.classes[0, :2].tolist() == [0, 2]
    np.testing.assert_array_equal(picked.keypoints[0, 1], points[0, 2])
    only = select(Candidates(boxes, scores, classes), score_threshold=0.0, iou_threshold=0.5, limit=4,
                  allowed=np.array([2]))  # fmt: skip
    assert only.count.tolist() == [1, 1] and only.classes[:, 0].tolist() == [2, 2]
    assert only.keypoints.shape == (2, 4, 0, 3)


def test_select_keeps_only_the_best_candidates_before_nms() -> None:
    rng = np.random.default_rng(0)
    corner = rng.uniform(0, 600, (1, 5000, 2)).astype(np.float32)
    boxes = np.concatenate([corner, corner + 8], axis=-1)
    scores = rng.uniform(0.5, 1.0, (1, 5000)).astype(np.float32)
    picked = select(Candidates(boxes, scores, np.zeros((1, 5000), np.int64)), score_threshold=0.5,
                    iou_threshold=0.5, limit=50, pre_nms=100)  # fmt: skip
    assert picked.count[0] == 50
    assert picked.scores[0, 0] == scores.max()
    assert (np.diff(picked.scores[0]) <= 0).all()
