"""The geometry of OCR, in numpy alone: text boxes from a DB probability map, crop sizes, reading order.

DB ("Differentiable Binarization") detectors output, for each pixel, the probability that it lies inside a
text line's shrunk core. Boxes come from the connected regions of the thresholded map: each region's
minimum-area rectangle, scored by the mean probability inside it, then grown back ("unclipped") by
``area × ratio / perimeter`` on every side, as the PP-OCR post-processing does.

Written here rather than taken from OpenCV (``findContours``, ``minAreaRect``) and pyclipper: the whole
of OpenCV installs at ~150 MB, heavy for a Raspberry Pi, and what OCR needs of it is small. Regions are
found from the runs of each row, merged across rows by a vectorised union-find; a region's rectangle is
the rotating-calipers minimum over its convex hull (of the row ends, which have the same hull as the
whole region). Offsetting a rectangle by ``d`` with round joins and taking the minimum-area rectangle of
the result, which is what pyclipper then ``minAreaRect`` do, is the rectangle ``d`` larger on each side,
so no polygon clipping is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["DbParams", "db_boxes", "regions", "min_area_rect", "order_clockwise", "crop_size", "is_tall",
           "upright_coordinates", "reading_order", "page_angle", "scale_quads", "flips"]  # fmt: skip

TALL = 1.5
"""A crop this many times taller than wide is a vertical line: it is turned 90° before reading."""


@dataclass(frozen=True)
class DbParams:
    """DB post-processing settings (PP-OCR's defaults)."""

    threshold: float = 0.3
    """A pixel is text when its probability is above this."""
    box_threshold: float = 0.5
    """A region is kept when the mean probability inside its rectangle is at least this."""
    unclip_ratio: float = 1.6
    max_candidates: int = 1000
    min_size: float = 3.0
    """Regions whose rectangle's shorter side is below this (in map pixels) are dropped."""


def db_boxes(prob: np.ndarray, params: DbParams = DbParams()) -> tuple[np.ndarray, np.ndarray]:
    """Text boxes in one probability map ``prob`` [H, W]: quads [K, 4, 2] (x, y in map pixels, clockwise
    from the top-left) and their scores [K]."""
    mask = _dilate(prob > params.threshold)
    quads, scores = [], []
    for points in regions(mask)[: params.max_candidates]:
        corners, (width, height) = min_area_rect(points)
        if min(width, height) < params.min_size:
            continue
        score = box_score(prob, corners)
        if score < params.box_threshold:
            continue
        distance = width * height * params.unclip_ratio / (2 * (width + height))
        corners = _grow(corners, distance)
        if min(width, height) + 2 * distance < params.min_size + 2:
            continue
        quads.append(order_clockwise(corners))
        scores.append(score)
    if not quads:
        return np.zeros((0, 4, 2), np.float32), np.zeros(0, np.float32)
    return np.stack(quads).astype(np.float32), np.asarray(scores, np.float32)


def _dilate(mask: np.ndarray) -> np.ndarray:
    """A 2×2 dilation (each pixel also takes its upper, left and upper-left neighbours), as PP-OCR does."""
    out = mask.copy()
    out[1:, :] |= mask[:-1, :]
    out[:, 1:] |= mask[:, :-1]
    out[1:, 1:] |= mask[:-1, :-1]
    return out


def regions(mask: np.ndarray) -> list[np.ndarray]:
    """The 8-connected regions of a boolean mask, each as the points (x, y) [N, 2] that end its runs
    (the leftmost and rightmost pixel of each of its runs), in order of their first row."""
    height, width = mask.shape
    padded = np.zeros((height, width + 2), np.int8)
    padded[:, 1:-1] = mask
    step = np.diff(padded, axis=1)
    rows, starts = np.nonzero(step == 1)  # row-major order: the starts and ends of a row pair up
    _, ends = np.nonzero(step == -1)  # exclusive
    if rows.size == 0:
        return []
    labels = _connect(rows, starts, ends, width + 2)
    order = np.argsort(labels, kind="stable")
    cuts = np.flatnonzero(np.diff(labels[order])) + 1
    found = []
    for group in np.split(order, cuts):
        ys = rows[group]
        xs = np.concatenate([starts[group], ends[group] - 1])
        found.append(np.stack([xs, np.concatenate([ys, ys])], axis=1))
    found.sort(key=lambda pts: (int(pts[:, 1].min()), int(pts[:, 0].min())))
    return found


def _connect(rows: np.ndarray, starts: np.ndarray, ends: np.ndarray, stride: int) -> np.ndarray:
    """A label per run: runs in adjacent rows that touch (8-connectivity) share one."""
    # For run a in row r, the runs of row r+1 that touch it are those with end >= a.start and
    # start <= a.end (ends exclusive): a contiguous range, found by searching (row, column) keys.
    next_row = (rows + 1) * stride
    low = np.searchsorted(rows * stride + ends, next_row + starts, side="left")
    high = np.searchsorted(rows * stride + starts, next_row + ends, side="right")
    counts = np.maximum(high - low, 0)
    a = np.repeat(np.arange(rows.size), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    b = np.repeat(low, counts) + offsets
    parent = np.arange(rows.size)
    while a.size:  # hook each pair's roots to the smaller, then jump pointers until every run sees its root
        pa, pb = parent[a], parent[b]
        if np.array_equal(pa, pb):
            break
        smaller = np.minimum(pa, pb)
        np.minimum.at(parent, pa, smaller)
        np.minimum.at(parent, pb, smaller)
        while not np.array_equal(parent, jumped := parent[parent]):
            parent = jumped
    return parent


def convex_hull(points: np.ndarray) -> np.ndarray:
    """The convex hull of points [N, 2], counter-clockwise in x-right/y-up terms (Andrew's monotone chain)."""
    pts = np.unique(points.astype(np.float64), axis=0)  # sorted by x, then y
    if len(pts) < 3:
        return pts

    def half(seq: np.ndarray) -> list[np.ndarray]:
        chain: list[np.ndarray] = []
        for p in seq:
            while len(chain) >= 2:
                (ox, oy), (ax, ay) = chain[-2], chain[-1]
                if (ax - ox) * (p[1] - oy) - (ay - oy) * (p[0] - ox) > 0:
                    break
                chain.pop()
            chain.append(p)
        return chain

    lower, upper = half(pts), half(pts[::-1])
    return np.array(lower[:-1] + upper[:-1])


def min_area_rect(points: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """The minimum-area rectangle around ``points`` [N, 2]: its corners [4, 2] and its (width, height),
    width measured along the edge the corners start with."""
    hull = convex_hull(points)
    if len(hull) == 1:
        return np.repeat(hull, 4, axis=0), (0.0, 0.0)
    edges = np.roll(hull, -1, axis=0) - hull
    lengths = np.hypot(edges[:, 0], edges[:, 1])
    keep = lengths > 0
    along = edges[keep] / lengths[keep, None]  # one candidate direction per hull edge
    across = np.stack([-along[:, 1], along[:, 0]], axis=1)
    u, v = hull @ along.T, hull @ across.T  # [points, directions]
    areas = (u.max(0) - u.min(0)) * (v.max(0) - v.min(0))
    best = int(np.argmin(areas))
    a, c = along[best], across[best]
    u0, u1, v0, v1 = u[:, best].min(), u[:, best].max(), v[:, best].min(), v[:, best].max()
    corners = np.array([u0 * a + v0 * c, u1 * a + v0 * c, u1 * a + v1 * c, u0 * a + v1 * c])
    return corners, (float(u1 - u0), float(v1 - v0))


def _grow(corners: np.ndarray, distance: float) -> np.ndarray:
    """The rectangle ``corners`` (in order round it, sides longer than 0) with each side moved out by
    ``distance``: each corner moves along the two sides that meet there, away from their other ends."""
    out = []
    for i, p in enumerate(corners):
        prev, nxt = corners[i - 1], corners[(i + 1) % 4]
        out.append(p + ((p - prev) / np.hypot(*(p - prev)) + (p - nxt) / np.hypot(*(p - nxt))) * distance)
    return np.array(out)


def box_score(prob: np.ndarray, corners: np.ndarray) -> float:
    """The mean of ``prob`` over the pixels inside the convex quad ``corners`` (edges included)."""
    height, width = prob.shape
    x0, y0 = np.clip(np.floor(corners.min(axis=0)).astype(int), 0, [width - 1, height - 1])
    x1, y1 = np.clip(np.ceil(corners.max(axis=0)).astype(int), 0, [width - 1, height - 1])
    ys, xs = np.mgrid[y0 : y1 + 1, x0 : x1 + 1]
    inside = np.ones(xs.shape, bool)
    quad = corners if _area2(corners) >= 0 else corners[::-1]
    for i in range(4):
        (ax, ay), (bx, by) = quad[i], quad[(i + 1) % 4]
        edge = np.hypot(bx - ax, by - ay)
        if edge == 0:
            continue
        # signed distance of each pixel centre from the edge, positive inside; half a pixel of slack
        inside &= ((bx - ax) * (ys - ay) - (by - ay) * (xs - ax)) / edge >= -0.5
    values = prob[y0 : y1 + 1, x0 : x1 + 1][inside]
    return float(values.mean()) if values.size else 0.0


def _area2(quad: np.ndarray) -> float:
    x, y = quad[:, 0], quad[:, 1]
    return float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def order_clockwise(corners: np.ndarray) -> np.ndarray:
    """Four corners as top-left, top-right, bottom-right, bottom-left (image coordinates, y down)."""
    by_x = corners[np.argsort(corners[:, 0], kind="stable")]
    left, right = by_x[:2], by_x[2:]
    top_left, bottom_left = left[np.argsort(left[:, 1], kind="stable")]
    top_right, bottom_right = right[np.argsort(right[:, 1], kind="stable")]
    return np.array([top_left, top_right, bottom_right, bottom_left])


def scale_quads(quads: np.ndarray, sx: float, sy: float, width: int, height: int) -> np.ndarray:
    """Quads from map pixels to image pixels (× ``sx``, ``sy``), inside the image, in clockwise order."""
    if not len(quads):
        return quads
    out = quads * np.array([sx, sy], np.float32)
    out[..., 0] = np.clip(out[..., 0], 0, width - 1)
    out[..., 1] = np.clip(out[..., 1], 0, height - 1)
    return np.stack([order_clockwise(q) for q in out])


def crop_size(quad: np.ndarray) -> tuple[int, int]:
    """The (width, height) in pixels of the straightened crop of ``quad`` (clockwise from its top-left)."""
    p = quad.astype(np.float64)
    width = max(np.hypot(*(p[0] - p[1])), np.hypot(*(p[2] - p[3])))
    height = max(np.hypot(*(p[0] - p[3])), np.hypot(*(p[1] - p[2])))
    return int(width), int(height)


def is_tall(size: tuple[int, int]) -> bool:
    """Whether a crop of this (width, height) holds a vertical line (read after turning it 90°)."""
    width, height = size
    return height >= TALL * max(width, 1)


def flips(
    tall: Sequence[bool], upside_down: Sequence[float], weights: Sequence[float], *, sure: float = 0.99
) -> list[bool]:
    """Which lines to turn over, from the line classifier's probability that each is upside down.

    The lines of a page are turned alike: the horizontal ones (and apart from them, the vertical ones)
    by the vote of their probabilities weighted by ``weights`` (their lengths), which is much surer than
    one line's guess (PP-OCR's small classifier often wavers on long, squeezed lines); a line goes against
    the vote only when the classifier is ``sure`` of it."""
    out = []
    for line_tall, p in zip(tall, upside_down):
        group = [(w, q) for t, w, q in zip(tall, weights, upside_down) if t == line_tall]
        total = sum(w for w, _ in group)
        vote = sum(w * q for w, q in group) / total > 0.5 if total > 0 else p > 0.5
        out.append(p >= sure if not vote else p > 1 - sure)
    return out


def page_angle(angles: Sequence[int], weights: Sequence[float]) -> int:
    """The clockwise rotation (0, 90, 180 or 270) most of the text has, by weight; 0 when there is none."""
    totals = {0: 0.0, 90: 0.0, 180: 0.0, 270: 0.0}
    for angle, weight in zip(angles, weights):
        totals[angle % 360] += weight
    best = max(totals, key=lambda a: (totals[a], a == 0))
    return best if totals[best] > 0 else 0


def upright_coordinates(points: np.ndarray, angle: int) -> np.ndarray:
    """Points (x, y) of an image whose page was turned ``angle`` degrees clockwise, in the upright page's
    directions: x along its lines, y down its lines (up to a shift, which ordering does not need)."""
    x, y = points[..., 0], points[..., 1]
    turned = {0: (x, y), 90: (y, -x), 180: (-x, -y), 270: (-y, x)}[angle % 360]
    return np.stack(turned, axis=-1)


def reading_order(quads: np.ndarray, angle: int = 0) -> np.ndarray:
    """The order in which to read text boxes [K, 4, 2] of a page turned ``angle`` degrees clockwise: lines
    top to bottom, and boxes on the same line left to right (in the upright page's terms). A box is on
    the line of the box above it when its centre is above that box's bottom."""
    if not len(quads):
        return np.zeros(0, np.int64)
    upright = upright_coordinates(quads.astype(np.float64), angle)
    top, bottom = upright[..., 1].min(axis=1), upright[..., 1].max(axis=1)
    left, middle = upright[..., 0].min(axis=1), (top + bottom) / 2
    order: list[int] = []
    line: list[int] = []
    line_bottom = -np.inf
    for i in np.lexsort((left, top)):
        if line and middle[i] > line_bottom:
            order += sorted(line, key=lambda j: left[j])
            line = []
        if not line:
            line_bottom = bottom[i]
        line.append(int(i))
    order += sorted(line, key=lambda j: left[j])
    return np.asarray(order, np.int64)
