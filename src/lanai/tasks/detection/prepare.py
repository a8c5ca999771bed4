"""Encoded image → a detector's input tensor, letterboxed or stretched, and where the image went.

Imports Pillow: the detect task imports this module only where images are decoded (the batch thread).
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image

from lanai.config import DEFAULT_MAX_PIXELS
from lanai.tasks.detection.geometry import Placement, letterbox, stretch
from lanai.tasks.image import _EXIF_FORMATS, READABLE, decode_image
from lanai.types import ImagePreprocess

__all__ = ["prepare_image", "PAD"]

PAD = 114
"""The grey that letterboxing pads with (YOLO's convention)."""
_SWAPPED = (5, 6, 7, 8)  # EXIF orientations that turn the image a quarter


def prepare_image(
    data: bytes, spec: ImagePreprocess, size: tuple[int, int], *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray, Placement]:
    """``data`` decoded, fitted into ``size`` (width, height) as ``spec.fit`` says (``crop`` counts as
    ``letterbox`` here: a detector must see the whole image), normalised and laid out as ``spec`` says,
    with a batch axis of 1; and the placement that maps boxes back to the original's pixels."""
    target_w, target_h = size
    # JPEGs decode at reduced scale while every side still covers the target (libjpeg's DCT scaling)
    need = min(target_w, target_h) if spec.fit != "stretch" else max(target_w, target_h)
    img = decode_image(data, min_side=need, max_pixels=max_pixels, color=spec.color)
    width, height = _upright_size(data)
    fit = stretch if spec.fit == "stretch" else letterbox
    place = fit(width, height, target_w, target_h)
    resized = np.asarray(img.resize(place.size, Image.Resampling.BILINEAR))
    if resized.ndim == 2:
        resized = resized[:, :, np.newaxis]
    if place.size == size:
        pixels = resized
    else:
        pixels = np.full((target_h, target_w, resized.shape[2]), PAD, np.uint8)
        pixels[place.pad_y : place.pad_y + place.size[1], place.pad_x : place.pad_x + place.size[0]] = resized
    return _normalise(pixels, spec)[np.newaxis], place


def _upright_size(data: bytes) -> tuple[int, int]:
    """The original image's width and height, upright (the decoded image may be at reduced scale). Only
    the header is read again, and ``decode_image`` has already found it readable."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # of a large image or corrupt EXIF, which decode_image has let by
        with Image.open(io.BytesIO(data), formats=READABLE) as header:
            width, height = header.size
            if header.format in _EXIF_FORMATS and header.getexif().get(0x0112, 1) in _SWAPPED:
                return height, width
    return width, height


def _normalise(pixels: np.ndarray, spec: ImagePreprocess) -> np.ndarray:
    if spec.channel_order == "BGR" and pixels.shape[2] == 3:
        pixels = pixels[:, :, ::-1]
    if spec.layout == "NCHW":
        pixels = pixels.transpose(2, 0, 1)
    if spec.dtype == "uint8":
        return np.ascontiguousarray(pixels)
    channels = pixels.shape[0] if spec.layout == "NCHW" else pixels.shape[2]
    shape = (channels, 1, 1) if spec.layout == "NCHW" else (1, 1, channels)
    mean = np.asarray(spec.mean[:channels], dtype=np.float32).reshape(shape)
    tensor = np.subtract(pixels, mean, dtype=np.float32, order="C")
    tensor *= (1.0 / np.asarray(spec.std[:channels], dtype=np.float32)).reshape(shape)
    return tensor
