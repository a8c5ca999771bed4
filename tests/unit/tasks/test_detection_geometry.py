"""Letterbox and stretch arithmetic, and a real photo prepared for a detector and mapped back."""

from __future__ import annotations

import numpy as np
import pytest

from lanai.tasks.detection.geometry import letterbox, stretch
from lanai.tasks.detection.prepare import PAD, prepare_image
from lanai.types import ImagePreprocess

from support import encode, photo


def test_letterbox_fits_the_whole_image_and_centres_it() -> None:
    place = letterbox(600, 400, 640, 640)  # coffee's size
    assert place.size == (640, 427) and (place.pad_x, place.pad_y) == (0, 106)
    assert place.scale_x == pytest.approx(640 / 600) and place.scale_y == pytest.approx(427 / 400)
    tall = letterbox(300, 900, 320, 320)
    assert tall.size == (107, 320) and (tall.pad_x, tall.pad_y) == (106, 0)


def test_boxes_map_back_to_the_original_pixels_and_stay_inside() -> None:
    place = letterbox(600, 400, 640, 640)
    # the image's corners in the input map to the original's corners
    corners = np.array([[0, 106, 640, 106 + 427]], np.float32)
    np.testing.assert_allclose(place.boxes_to_original(corners), [[0, 0, 600, 400]], atol=1e-3)
    # a box reaching into the padding is clipped to the image
    np.testing.assert_allclose(place.boxes_to_original(np.array([[-20, 0, 700, 50]], np.float32)), [[0, 0, 600, 0]])
    points = place.points_to_original(np.array([[320.0, 106 + 213.5]], np.float32))
    np.testing.assert_allclose(points, [[300, 200]], atol=1e-3)


def test_stretch_scales_each_axis() -> None:
    place = stretch(600, 400, 300, 300)
    assert place.size == (300, 300) and (place.pad_x, place.pad_y) == (0, 0)
    np.testing.assert_allclose(place.boxes_to_original(np.array([[30, 30, 150, 300]], np.float32)),
                               [[60, 40, 300, 400]])  # fmt: skip


def test_a_real_photo_is_letterboxed_with_grey_bars() -> None:
    pixels = photo("coffee")  # 400 × 600
    spec = ImagePreprocess(mean=(0.0,) * 3, std=(1.0,) * 3, fit="letterbox", dtype="uint8", layout="NHWC")
    tensor, place = prepare_image(encode(pixels, "PNG"), spec, (640, 640))
    assert tensor.shape == (1, 640, 640, 3) and tensor.dtype == np.uint8
    assert (place.width, place.height) == (600, 400)
    assert (tensor[0, :106] == PAD).all() and (tensor[0, 106 + 427 :] == PAD).all()
    inside = tensor[0, 106 : 106 + 427].astype(np.float32)
    assert abs(inside.mean() - pixels.mean()) < 3  # the photo itself, resized


def test_bgr_float_nchw_and_stretch() -> None:
    pixels = np.zeros((40, 60, 3), np.uint8)
    pixels[..., 0] = 200  # red
    spec = ImagePreprocess(mean=(10.0, 20.0, 30.0), std=(2.0, 2.0, 2.0), fit="stretch", channel_order="BGR")
    tensor, place = prepare_image(encode(pixels, "PNG"), spec, (32, 16))
    assert tensor.shape == (1, 3, 16, 32) and tensor.dtype == np.float32
    assert (place.scale_x, place.scale_y) == (32 / 60, 16 / 40)
    np.testing.assert_allclose(tensor[0, :, 5, 5], [(0 - 10) / 2, (0 - 20) / 2, (200 - 30) / 2])  # B, G, R


def test_a_big_jpeg_is_decoded_at_reduced_scale_but_mapped_at_full_size() -> None:
    big = np.kron(photo("astronaut"), np.ones((4, 4, 1), np.uint8))  # 2048 × 2048
    spec = ImagePreprocess(mean=(0.0,) * 3, std=(1.0,) * 3, fit="letterbox")
    _, place = prepare_image(encode(big, quality=90), spec, (320, 320))
    assert (place.width, place.height) == (2048, 2048) and place.scale_x == pytest.approx(320 / 2048)


def test_image_classify_preprocess_is_unchanged_by_the_new_fields() -> None:
    spec = ImagePreprocess()
    assert spec.to_dict() == {"resize": 256, "crop": 224, "mean": [127.0] * 3, "std": [128.0] * 3,
                              "layout": "NCHW", "dtype": "float32", "color": "RGB"}  # fmt: skip
    detector = ImagePreprocess(fit="letterbox", channel_order="BGR")
    assert ImagePreprocess.from_dict(detector.to_dict()) == detector
    assert ImagePreprocess.from_dict(spec.to_dict()) == spec
