"""Labels files: UTF-8 text, one class label per line, in the order of the model's output."""

from __future__ import annotations

from collections.abc import Sequence

from lanai.errors import StoreError
from lanai.types import TensorSpec

__all__ = ["parse_labels", "check_label_count"]

_FORMAT_HINT = "save the labels as UTF-8 text with one label per line"


def parse_labels(data: bytes, *, source: str) -> list[str]:
    """The labels in ``data`` (the bytes of the file ``source``).

    A UTF-8 byte-order mark and trailing empty lines are ignored; surrounding spaces are stripped.
    An empty file, an empty line between labels or bytes that are not UTF-8 raise StoreError.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise StoreError(
            f"labels file {source} is not UTF-8 text (bad byte at offset {err.start})",
            hint=_FORMAT_HINT,
        ) from None
    labels = [line.strip() for line in text.splitlines()]
    while labels and not labels[-1]:
        labels.pop()
    if not labels:
        raise StoreError(f"labels file {source} holds no labels", hint=_FORMAT_HINT)
    empty = [str(number) for number, label in enumerate(labels, start=1) if not label]
    if empty:
        raise StoreError(
            f"labels file {source} has empty lines among its labels (line {', '.join(empty[:5])})",
            hint=_FORMAT_HINT,
        )
    return labels


def check_label_count(labels: Sequence[str], outputs: Sequence[TensorSpec], *, source: str) -> None:
    """StoreError unless there is one label per class of the first output.

    The class count is the last dimension of the first output; when that is unknown (``-1``), the
    model has no such output, or the output is not a row of class scores per image (one axis: a
    count per image, such as an SSD's ``num_detections`` [1]; three axes or more: a detector's head, a
    feature map), any count is accepted.
    """
    if not outputs or len(outputs[0].shape) != 2:
        return
    classes = outputs[0].shape[-1]
    if classes > 0 and classes != len(labels):
        raise StoreError(
            f"labels file {source} has {len(labels)} labels but the model's output "
            f"{outputs[0].name!r} has {classes} classes",
            hint="give exactly one label per output class, in output order",
        )
