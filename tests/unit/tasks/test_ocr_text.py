"""CTC decoding, stage labels, crops and line inputs of the ocr task."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from lanai.tasks.ocr.ctc import best_paths, character_table, decode
from lanai.tasks.ocr.images import crop, det_size, line_input, rec_width, resize_linear
from lanai.tasks.staged import parse_stage_labels

TABLE = character_table(("a", "b", "#"))  # blank, a, b, #, space


def _probs(path: list[int], classes: int = 5) -> np.ndarray:
    out = np.full((len(path), classes), 0.01, np.float32)
    out[np.arange(len(path)), path] = 0.9
    return out


def test_ctc_merges_repeats_and_drops_blanks() -> None:
    index, prob = best_paths(_probs([1, 1, 0, 1, 2, 2, 4, 3, 0])[None])
    text, confidence = decode(index[0], prob[0], TABLE)
    assert text == "aab #"
    assert abs(confidence - 0.9) < 1e-6


def test_ctc_of_blanks_only_is_empty() -> None:
    index, prob = best_paths(_probs([0, 0, 0])[None])
    assert decode(index[0], prob[0], TABLE) == ("", 0.0)


def test_stage_labels_keep_spaces_and_hashes() -> None:
    assert parse_stage_labels("!\n#\n \nz\n") == ("!", "#", " ", "z")
    assert parse_stage_labels("a\r\nb") == ("a", "b")


def test_det_size_is_in_multiples_of_32_within_limits() -> None:
    assert det_size(384, 191) == (1472, 736)  # enlarged to a shorter side of 736
    assert det_size(4000, 3000) == (1984, 1504)  # the longer side brought to 2000, then rounded
    assert all(side % 32 == 0 for side in det_size(1000, 900))


def test_crop_straightens_a_tilted_line() -> None:
    """A bar drawn at 30° comes out as a horizontal bar filling its crop."""
    page = Image.new("RGB", (200, 200), "white")
    angle = np.deg2rad(30)
    u, v = np.array([np.cos(angle), np.sin(angle)]), np.array([-np.sin(angle), np.cos(angle)])
    origin = np.array([40.0, 40.0])
    quad = np.array([origin, origin + 100 * u, origin + 100 * u + 20 * v, origin + 20 * v])
    ImageDraw.Draw(page).polygon([tuple(p) for p in quad], fill="black")
    ImageDraw.Draw(page).rectangle([0, 0, 5, 5], fill="red")  # outside the box: must not appear
    line = crop(page, quad)
    assert line.size == (100, 20)
    pixels = np.asarray(line.convert("L"), float)
    assert pixels[3:-3, 3:-3].mean() < 30  # dark inside


def test_a_vertical_line_is_turned_to_read_left_to_right() -> None:
    page = Image.new("RGB", (100, 200), "white")
    ImageDraw.Draw(page).rectangle([40, 20, 60, 30], fill="black")  # a mark at the line's start (top)
    quad = np.array([[40, 20], [60, 20], [60, 180], [40, 180]], float)
    line = crop(page, quad)
    assert line.size == (160, 20)
    pixels = np.asarray(line.convert("L"), float)
    # turned counter-clockwise, the top of the vertical line is now at the left end
    assert pixels[:, :8].mean() < 60 and pixels[:, -20:].mean() > 200


def test_line_input_is_48_high_bgr_in_minus_one_to_one_padded_with_zeros() -> None:
    line = Image.new("RGB", (100, 20), (255, 0, 0))  # red
    x = line_input(line, 48, 320)
    assert x.shape == (1, 3, 48, 320) and x.dtype == np.float32
    assert np.allclose(x[0, 2, :, :240], 1.0) and np.allclose(x[0, 0, :, :240], -1.0)  # B, G, R order
    assert np.all(x[:, :, :, 240:] == 0)
    assert rec_width(100, 20, 48, (320, 480)) == 320
    assert rec_width(190, 20, 48, (320, 480, 640)) == 480  # 456 wide at 48 high
    assert rec_width(5000, 20, 48, (320, 480)) == 480  # squeezed into the widest


def test_resize_linear_interpolates_between_neighbours() -> None:
    ramp = np.tile(np.arange(0, 256, 16, dtype=np.uint8)[None, :, None], (2, 1, 3))  # 16 wide
    half = resize_linear(ramp, 8, 2)
    assert half[0, :, 0].tolist() == [8, 40, 72, 104, 136, 168, 200, 232]  # the mean of each pair
