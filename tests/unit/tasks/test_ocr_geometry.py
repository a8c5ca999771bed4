"""OCR geometry in numpy: DB post-processing, crop geometry, orientation and reading order."""

from __future__ import annotations

import numpy as np
import pytest

from lanai.tasks.ocr.geometry import (
    DbParams, crop_size, db_boxes, flips, is_tall, min_area_rect, order_clockwise, page_angle, reading_order,
    regions,
)  # fmt: skip


def test_regions_are_8_connected_and_separate() -> None:
    mask = np.zeros((10, 12), bool)
    mask[1:3, 1:4] = True  # a block
    mask[3, 4] = True  # touches it only at a corner: same region
    mask[6:9, 8:11] = True  # a second block
    found = regions(mask)
    assert len(found) == 2
    first = {tuple(p) for p in found[0].tolist()}
    assert {(1, 1), (3, 1), (1, 2), (3, 2), (4, 3)} == first  # the row ends (x, y) of the first region
    assert found[1][:, 0].min() == 8 and found[1][:, 0].max() == 10


def test_a_u_shape_is_one_region() -> None:
    """Two arms that only meet below: the union of runs must join them."""
    mask = np.zeros((6, 9), bool)
    mask[0:5, 1] = mask[0:5, 7] = True
    mask[5, 1:8] = True
    assert len(regions(mask)) == 1


def test_min_area_rect_of_a_rotated_rectangle() -> None:
    angle = np.deg2rad(30)
    u, v = np.array([np.cos(angle), np.sin(angle)]), np.array([-np.sin(angle), np.cos(angle)])
    grid = np.array([a * u * 40 + b * v * 10 for a in np.linspace(0, 1, 21) for b in np.linspace(0, 1, 6)])
    corners, (width, height) = min_area_rect(grid + 50)
    assert sorted([width, height]) == pytest.approx([10, 40], abs=1e-6)
    assert np.hypot(*(corners[0] - corners[1])) * np.hypot(*(corners[1] - corners[2])) == pytest.approx(400)


def test_db_boxes_finds_two_lines_grown_by_the_unclip_distance() -> None:
    prob = np.zeros((64, 128), np.float32)
    prob[10:20, 10:110] = 0.9  # a line's shrunk core, 100 × 10 pixels
    prob[40:48, 20:60] = 0.8
    prob[55:57, 5:7] = 0.9  # a speck: too small
    quads, scores = db_boxes(prob)
    assert len(quads) == 2
    # the mean inside each rectangle, whose rim (from the dilation) is not text
    assert 0.75 < scores[0] < 0.9 and 0.6 < scores[1] < 0.8
    first = quads[0]
    # the 2×2 dilation makes the region x 10..110, y 10..20 (pixel centres), 100 × 10 between them;
    # unclip grows each side by area × 1.6 / perimeter = 100 × 10 × 1.6 / 220 ≈ 7.27
    d = 100 * 10 * 1.6 / 220
    assert first[0] == pytest.approx([10 - d, 10 - d], abs=0.01)
    assert first[2] == pytest.approx([110 + d, 20 + d], abs=0.01)


def test_db_boxes_drops_faint_regions() -> None:
    prob = np.zeros((40, 80), np.float32)
    prob[10:20, 10:70] = 0.35  # above the pixel threshold, below the box threshold
    assert len(db_boxes(prob)[0]) == 0
    assert len(db_boxes(prob, DbParams(box_threshold=0.3))[0]) == 1


def test_order_clockwise_starts_top_left() -> None:
    quad = np.array([[10, 20], [0, 0], [10, 0], [0, 20]], float)
    assert order_clockwise(quad).tolist() == [[0, 0], [10, 0], [10, 20], [0, 20]]


def test_crop_size_and_tall_lines() -> None:
    quad = np.array([[0, 0], [30, 40], [22, 46], [-8, 6]], float)  # 50 long, 10 high, tilted
    assert crop_size(quad) == (50, 10)
    assert not is_tall((50, 10)) and is_tall((10, 50)) and not is_tall((10, 14))


def _box(x: float, y: float, w: float = 40, h: float = 10) -> np.ndarray:
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], float)


def test_reading_order_lines_top_to_bottom_then_left_to_right() -> None:
    boxes = [_box(100, 52), _box(0, 0), _box(0, 50), _box(60, 2), _box(0, 100)]  # a line, slightly skewed
    assert reading_order(np.stack(boxes)).tolist() == [1, 3, 2, 0, 4]


def test_reading_order_of_a_page_turned_upside_down() -> None:
    boxes = [_box(0, 0), _box(60, 0), _box(0, 50)]  # upright reading order: 0, 1, 2
    turned = np.stack([1000 - b for b in boxes])  # the page turned 180°
    assert reading_order(turned, 180).tolist() == [0, 1, 2]
    assert reading_order(turned, 0).tolist() == [2, 1, 0]


def test_reading_order_of_a_page_turned_a_quarter() -> None:
    boxes = [_box(0, 0), _box(60, 0), _box(0, 50)]
    # turned 90° clockwise: upright (x, y) lands at (-y, x); lines run down the image, right to left
    turned = np.stack([np.stack([-b[:, 1], b[:, 0]], axis=1) for b in boxes])
    assert reading_order(turned, 90).tolist() == [0, 1, 2]


def test_page_angle_is_the_weighted_vote() -> None:
    assert page_angle([0, 180, 180], [100, 30, 30]) == 0
    assert page_angle([0, 180, 180], [10, 30, 30]) == 180
    assert page_angle([], []) == 0


def test_lines_turn_over_together_unless_one_is_sure() -> None:
    tall = [False] * 4
    # most of the (long) lines lean upside down: all turn, but the one the classifier is sure of
    assert flips(tall, [0.8, 0.7, 0.4, 0.001], [100, 100, 50, 20]) == [True, True, True, False]
    assert flips(tall, [0.2, 0.3, 0.95, 0.995], [100, 100, 50, 20]) == [False, False, False, True]
    # vertical lines vote apart from horizontal ones
    assert flips([False, True], [0.1, 0.9], [10, 10]) == [False, True]
