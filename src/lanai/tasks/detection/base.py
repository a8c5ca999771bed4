"""What an output decoder is: it recognises a family's raw outputs and turns a batch of them into
candidate boxes (``nms.Candidates``), vectorised over the whole batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from lanai.tasks.detection.nms import Candidates
from lanai.types import ImagePreprocess, TensorSpec

__all__ = ["Decoder", "option", "sigmoid_if_logits", "softmax"]


class Decoder:
    """One family of detector heads."""

    name: ClassVar[str]
    summary: ClassVar[str]
    preprocess: ClassVar[ImagePreprocess]
    """The preprocessing this family usually wants (``models add`` uses it unless told otherwise)."""
    labels: ClassVar[tuple[str, ...]] = ()
    """Labels to use when the model comes without a labels file."""
    label_offset: ClassVar[int] = 0
    """Subtracted from a class id to index the labels (1 for families that count from 1)."""

    def fits(self, outputs: Sequence[TensorSpec]) -> bool:
        """Whether a model with ``outputs`` can be decoded by this family."""
        raise NotImplementedError

    def claims(self, outputs: Sequence[TensorSpec], classes: int | None) -> bool:
        """Whether ``outputs`` can only be this family's (``classes``: the labels' count, if known), so
        that ``models add`` may choose it without being told."""
        return self.fits(outputs)

    def settle(self, outputs: Sequence[TensorSpec], classes: int | None, options: Mapping[str, Any]) -> dict[str, Any]:
        """Options this family reads off the outputs' shapes when ``options`` do not give them (``models
        add`` records them in the manifest beside the decoder's name); none by default."""
        return {}

    def decode(
        self, outputs: Mapping[str, np.ndarray], size: tuple[int, int], options: Mapping[str, Any]
    ) -> Candidates:
        """A batch's outputs → candidates in the input's pixels; ``size`` is the input's width and height."""
        raise NotImplementedError


def option(options: Mapping[str, Any], name: str, default: Any) -> Any:
    """A decoder option recorded in the manifest (``--option name=value``), else ``default``."""
    value = options.get(name, default)
    return type(default)(value) if default is not None and not isinstance(value, list) else value


def sigmoid_if_logits(scores: np.ndarray) -> np.ndarray:
    """Scores as probabilities: exported heads either end in a sigmoid or leave logits."""
    scores = scores.astype(np.float32, copy=False)
    if scores.size and (scores.min() < 0.0 or scores.max() > 1.0):
        return 1.0 / (1.0 + np.exp(-scores))  # type: ignore[no-any-return]
    return scores


def softmax(values: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = np.exp(values - values.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)  # type: ignore[no-any-return]
