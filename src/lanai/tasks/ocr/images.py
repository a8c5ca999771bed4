"""Pillow's part of OCR: a page becomes the detector's input, a text box becomes a straightened crop, and
a crop becomes the classifier's or the recogniser's input. PP-OCR models take BGR pixels scaled to
[-1, 1], in NCHW; crops are resized to the model's height and padded on the right with zeros."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from lanai.tasks.ocr.geometry import crop_size, is_tall

__all__ = ["det_size", "det_input", "crop", "line_input", "rec_width", "resize_linear"]

DET_MIN_SIDE = 736
"""Pages whose shorter side is below this are enlarged to it for detection (PP-OCR's ``limit_side_len``)."""
DET_MAX_SIDE = 2000
"""Pages whose longer side is above this are reduced to it for detection."""


def det_size(width: int, height: int) -> tuple[int, int]:
    """The (width, height) a page of this size is resized to for the detector: a small page enlarged until
    its shorter side is ``DET_MIN_SIDE``, and any page reduced until its longer side is at most
    ``DET_MAX_SIDE`` (a strip of one line is not blown up past it), each side a multiple of 32."""
    scale = min(max(1.0, DET_MIN_SIDE / min(width, height)), DET_MAX_SIDE / max(width, height))
    return (max(32, round(int(width * scale) / 32) * 32), max(32, round(int(height * scale) / 32) * 32))


def _normalised(pixels: np.ndarray) -> np.ndarray:
    """RGB uint8 [H, W, 3] → BGR float32 [1, 3, H, W] in [-1, 1]."""
    chw = np.ascontiguousarray(pixels[:, :, ::-1].transpose(2, 0, 1))
    out = np.multiply(chw, 2.0 / 255.0, dtype=np.float32)
    out -= 1.0
    return out[np.newaxis]


def det_input(page: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """The detector's input for ``page`` (RGB) resized to ``size``: [1, 3, H, W]."""
    return _normalised(np.asarray(page.resize(size, Image.Resampling.BILINEAR)))


def crop(page: Image.Image, quad: np.ndarray) -> Image.Image:
    """The text in ``quad`` (clockwise from its top-left, page pixels) straightened into an upright
    rectangle; a vertical line is turned 90° counter-clockwise so that it reads left to right."""
    width, height = crop_size(quad)
    width, height = max(width, 1), max(height, 1)
    top_left, top_right, bottom_right, bottom_left = quad.astype(np.float64)
    corners = (*top_left, *bottom_left, *bottom_right, *top_right)  # Pillow's QUAD order
    # a rectangle's quad transform is affine; pixels outside the page are white paper
    out = page.transform((width, height), Image.Transform.QUAD, corners, Image.Resampling.BICUBIC,
                         fillcolor=(255, 255, 255))  # fmt: skip
    return out.transpose(Image.Transpose.ROTATE_90) if is_tall((width, height)) else out


def line_input(line: Image.Image, height: int, width: int) -> np.ndarray:
    """A crop resized to ``height`` keeping its aspect (squeezed to ``width`` if wider), then padded with
    zeros to ``width``: [1, 3, height, width]."""
    resized = min(width, max(1, math.ceil(height * line.width / max(line.height, 1))))
    pixels = resize_linear(np.asarray(line), resized, height)
    out = np.zeros((1, 3, height, width), np.float32)
    out[:, :, :, :resized] = _normalised(pixels)
    return out


def resize_linear(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """``pixels`` [H, W, C] resized by plain bilinear interpolation between the nearest source pixels,
    without the smoothing Pillow adds when it shrinks: OpenCV's ``INTER_LINEAR``, which PP-OCR's models
    were trained on (it decides, e.g., the line classifier's 0° or 180° on squeezed long lines)."""
    src_h, src_w = pixels.shape[:2]
    ys = np.clip((np.arange(height) + 0.5) * (src_h / height) - 0.5, 0, src_h - 1)
    xs = np.clip((np.arange(width) + 0.5) * (src_w / width) - 0.5, 0, src_w - 1)
    y0, x0 = ys.astype(np.intp), xs.astype(np.intp)
    y1, x1 = np.minimum(y0 + 1, src_h - 1), np.minimum(x0 + 1, src_w - 1)
    wy, wx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    img = pixels.astype(np.float32)
    top = img[y0][:, x0] * (1 - wx) + img[y0][:, x1] * wx
    bottom = img[y1][:, x0] * (1 - wx) + img[y1][:, x1] * wx
    return np.rint(top * (1 - wy) + bottom * wy).astype(np.uint8)


def rec_width(line_width: int, line_height: int, height: int, buckets: tuple[int, ...]) -> int:
    """The padded width a line is recognised at: the smallest bucket that holds it at ``height``."""
    wanted = math.ceil(height * line_width / max(line_height, 1))
    return next((b for b in buckets if b >= wanted), buckets[-1])
