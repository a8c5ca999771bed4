"""GFL heads (Generalized Focal Loss: NanoDet, PP-PicoDet), exported without their post-processing.

Per level (stride 8, 16, 32, 64, …), a class-score tensor [N, H×W, C] and a box-distribution tensor
[N, H×W, 4 × (reg_max + 1)] (either may come channels-first, [N, C, H×W]). Each side of a box (left,
top, right, bottom distance from the cell's centre) is the expectation of a softmax over reg_max + 1
bins, times the stride. A level's stride is found from its cell count and the input size. Options:
``reg_max`` (default 7; ``models add`` reads it off the box tensors' width when the labels say which
tensors hold the classes), ``center_offset`` (where a cell's centre sits, in cells: default 0.5; NanoDet-Plus
uses 0)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lanai.errors import ModelLoadError
from lanai.tasks.detection.base import Decoder, option, sigmoid_if_logits, softmax
from lanai.tasks.detection.nms import Candidates
from lanai.types import ImagePreprocess, TensorSpec

__all__ = ["Gfl", "STRIDES"]

STRIDES = (8, 16, 32, 64, 128)


def _levels(arrays: Sequence[np.ndarray], reg_max: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pairs (scores [N, HW, C], distributions [N, HW, 4(R+1)]) of equal cell counts, channels last.
    A distribution is the tensor with a 4(R+1) axis; a level's scores, the other tensor of its cells."""
    bins = 4 * (reg_max + 1)
    boxes: dict[int, np.ndarray] = {}
    rest = []
    for array in arrays:
        if array.shape[2] == bins and array.shape[1] not in boxes:
            boxes[array.shape[1]] = array
        elif array.shape[1] == bins and array.shape[2] not in boxes:
            boxes[array.shape[2]] = array.transpose(0, 2, 1)
        else:
            rest.append(array)
    scores: dict[int, np.ndarray] = {}
    for array in rest:
        if array.shape[1] in boxes and array.shape[1] not in scores:
            scores[array.shape[1]] = array
        elif array.shape[2] in boxes:
            scores[array.shape[2]] = array.transpose(0, 2, 1)
    if not boxes or sorted(scores) != sorted(boxes):
        raise ValueError(f"the outputs do not pair up into scores and {bins}-bin box distributions per level")
    return [(scores[cells], boxes[cells]) for cells in sorted(scores, reverse=True)]


def _bins(outputs: Sequence[TensorSpec], classes: int) -> int | None:
    """The width of the box distributions, 4 × (reg_max + 1), where the outputs pair up per level into a
    tensor of ``classes`` scores and one of that many bins (either axis order); None if they do not, or
    if the two widths are equal and cannot be told apart."""
    dims = [spec.shape[1:] for spec in outputs]
    cells = {b if a == classes else a for a, b in dims if classes in (a, b)}
    bins = {b if a in cells else a for a, b in dims if classes not in (a, b) and (a in cells or b in cells)}
    if len(bins) != 1 or len(cells) != len(outputs) // 2 or -1 in cells:
        return None
    width = bins.pop()
    return width if width > 4 and width % 4 == 0 else None


def _stride(cells: int, width: int, height: int) -> int:
    for stride in STRIDES:
        if math.ceil(width / stride) * math.ceil(height / stride) == cells:
            return stride
    raise ValueError(f"a level of {cells} cells fits no stride of a {width}×{height} input")


class Gfl(Decoder):
    name = "gfl"
    summary = "GFL heads (NanoDet, PP-PicoDet): per level, class scores and box distributions (reg_max)"
    preprocess = ImagePreprocess(resize=416, crop=416, mean=(103.53, 116.28, 123.675), std=(57.375, 57.12, 58.395),
                                 fit="stretch", channel_order="BGR")  # fmt: skip

    def fits(self, outputs: Sequence[TensorSpec]) -> bool:
        shapes = [spec.shape for spec in outputs]
        return len(shapes) >= 2 and len(shapes) % 2 == 0 and all(len(shape) == 3 for shape in shapes)

    def claims(self, outputs: Sequence[TensorSpec], classes: int | None) -> bool:
        if not self.fits(outputs):
            return False
        if classes is not None and _bins(outputs, classes) is not None:
            return True
        with_bins = sum(32 in spec.shape[1:] for spec in outputs)  # reg_max 7, as NanoDet and PicoDet have
        return with_bins == len(outputs) // 2

    def settle(self, outputs: Sequence[TensorSpec], classes: int | None, options: Mapping[str, Any]) -> dict[str, Any]:
        """``reg_max`` from the box tensors' width, once the labels say which tensors hold the classes."""
        if "reg_max" in options:
            return {}
        bins = None if classes is None else _bins(outputs, classes)
        if bins is not None:
            return {"reg_max": bins // 4 - 1}
        if sum(32 in spec.shape[1:] for spec in outputs) != len(outputs) // 2:
            widths = sorted({d for spec in outputs for d in spec.shape[1:]})
            raise ModelLoadError(
                f"the GFL head's box distributions are not 32 wide (reg_max 7); its outputs' widths: {widths}.",
                hint="give the labels (--labels), which tell the class scores apart so that reg_max is read off "
                "the rest, or say it: --option reg_max=N for 4 × (N + 1) bins.",
            )
        return {}

    def decode(
        self, outputs: Mapping[str, np.ndarray], size: tuple[int, int], options: Mapping[str, Any]
    ) -> Candidates:
        reg_max = option(options, "reg_max", 7)
        offset = option(options, "center_offset", 0.5)
        width, height = size
        all_boxes, all_scores = [], []
        project = np.arange(reg_max + 1, dtype=np.float32)
        for scores, dist in _levels(list(outputs.values()), reg_max):
            cells = scores.shape[1]
            stride = _stride(cells, width, height)
            cols = math.ceil(width / stride)
            index = np.arange(cells)
            centres = (np.stack([index % cols, index // cols], axis=-1) + offset) * stride  # [HW, 2]
            sides = softmax(dist.reshape(*dist.shape[:2], 4, reg_max + 1).astype(np.float32)) @ project * stride
            all_boxes.append(np.concatenate([centres - sides[..., :2], centres + sides[..., 2:]], axis=-1))
            all_scores.append(scores)
        probs = sigmoid_if_logits(np.concatenate(all_scores, axis=1))
        best = probs.argmax(axis=-1)
        score = np.take_along_axis(probs, best[..., None], axis=-1)[..., 0]
        return Candidates(np.concatenate(all_boxes, axis=1).astype(np.float32), score, best)
