"""A model's batch is sized to the memory a row takes when its manifest leaves that to lanai."""

from __future__ import annotations

from lanai.backends.base import TensorSpec
from lanai.dataplane.batch_size import MOST_ROWS, ROWS_BUDGET, batch_rows, input_row_bytes

MB = 2**20
IMAGE = (TensorSpec("input", "FP32", (-1, 3, 224, 224)),)


def test_an_input_row_is_its_fixed_shape_in_bytes() -> None:
    assert input_row_bytes(IMAGE) == 3 * 224 * 224 * 4
    assert input_row_bytes((TensorSpec("ids", "INT64", (-1, 128)), TensorSpec("mask", "INT64", (-1, 128)))) == 2048
    assert input_row_bytes((TensorSpec("ids", "INT64", (-1, -1)),)) == 0  # no fixed row


def test_rows_in_flight_on_all_instances_stay_within_the_budget() -> None:
    image = input_row_bytes(IMAGE)
    # MobileNetV2 (float32): ~11.5 MB of activations a row; on three instances, one row each
    assert batch_rows(int(11.5 * MB), image, 3) == 1
    assert batch_rows(int(11.5 * MB), image, 1) == 3  # one instance (one core) holds three
    # the bundled int8 model: ~1.3 MB a row, so ~3 MB with its inputs
    small = batch_rows(int(1.3 * MB), image, 3)
    assert small == 5 and small * 3 * (1.3 * MB + 3 * image) <= ROWS_BUDGET
    assert batch_rows(int(1.3 * MB), image, 1) == MOST_ROWS  # never more than 8 by itself
    assert batch_rows(500 * MB, image, 5) == 1  # however large a row, one runs
    assert batch_rows(None, 0, 3) == MOST_ROWS  # not measured: the old default
