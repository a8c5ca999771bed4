from __future__ import annotations

import pytest

from lanai.errors import StoreError
from lanai.store import check_label_count, parse_labels
from lanai.types import TensorSpec


def test_parse_labels_accepts_bom_crlf_and_trailing_blank_lines() -> None:
    data = "\ufeffcat\r\ndog \r\n  bird\r\n\r\n\n".encode()
    assert parse_labels(data, source="l.txt") == ["cat", "dog", "bird"]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "holds no labels"),
        (b"\n\n", "holds no labels"),
        (b"cat\n\ndog\n", r"empty lines among its labels \(line 2\)"),
        ("chat\n".encode("latin-1") + b"caf\xe9\n", "not UTF-8 text"),
    ],
)
def test_parse_labels_refuses_bad_files(data: bytes, match: str) -> None:
    with pytest.raises(StoreError, match=match) as info:
        parse_labels(data, source="l.txt")
    assert "l.txt" in info.value.message
    assert info.value.hint


def test_label_count_must_match_a_known_class_dimension() -> None:
    outputs = (TensorSpec("logits", "FP32", (-1, 3)),)
    check_label_count(["a", "b", "c"], outputs, source="l.txt")
    with pytest.raises(StoreError, match="has 2 labels but the model's output 'logits' has 3"):
        check_label_count(["a", "b"], outputs, source="l.txt")


@pytest.mark.parametrize(
    "outputs",
    [
        (),
        (TensorSpec("y", "FP32", ()),),
        (TensorSpec("y", "FP32", (-1, -1)),),
        (TensorSpec("y", "FP32", (1, 84, 8400)),),
        (TensorSpec("num_detections:0", "FP32", (1,)),),  # an SSD's count per image, as tf2onnx may fix it
    ],
)
def test_label_count_is_not_checked_when_the_class_count_is_unknown(
    outputs: tuple[TensorSpec, ...],
) -> None:
    check_label_count(["a", "b"], outputs, source="l.txt")
