"""Classifier outputs → ranked, labelled predictions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lanai.errors import BadInput
from lanai.types import Prediction

__all__ = ["top_k", "rank", "ranked", "to_probabilities", "load_labels", "MAX_TOP_K"]

MAX_TOP_K = 1000


def to_probabilities(scores: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, unless the scores already are probabilities."""
    scores = scores.astype(np.float32, copy=False)
    if scores.min() >= 0.0 and float(np.abs(scores.sum(axis=-1) - 1.0).max()) < 1e-3:
        return scores
    shifted = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)  # type: ignore[no-any-return]


def top_k(scores: np.ndarray, labels: Sequence[str], k: int) -> list[Prediction]:
    """The ``k`` best classes of one image's scores (a 1-D array, or [1, C]), best first."""
    _check_k(k)
    probs = to_probabilities(scores.reshape(-1))
    k = min(k, probs.size)
    best = np.argpartition(-probs, k - 1)[:k]
    best = best[np.argsort(-probs[best], kind="stable")]
    return [Prediction(_label(labels, int(i)), int(i), float(probs[i])) for i in best]


def rank(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and classes best first, for a whole batch of scores [N, C] at once: numpy's cost
    per call, not per image, is what a busy server saves."""
    probs = to_probabilities(scores.reshape(len(scores), -1))
    return probs, np.argsort(-probs, axis=-1, kind="stable")


def ranked(probs: np.ndarray, order: np.ndarray, labels: Sequence[str], k: int) -> list[Prediction]:
    """The ``k`` best of one image's ``rank`` results."""
    _check_k(k)
    return [Prediction(_label(labels, i), i, float(probs[i])) for i in order[:k].tolist()]


def _check_k(k: int) -> None:
    if not 1 <= k <= MAX_TOP_K:
        raise BadInput(f"top_k must be between 1 and {MAX_TOP_K}, not {k}.", hint="use e.g. ?top_k=5.")


def _label(labels: Sequence[str], index: int) -> str:
    return labels[index] if index < len(labels) else str(index)


def load_labels(text: str) -> list[str]:
    """One label per line; blank trailing lines ignored."""
    return text.rstrip("\n").split("\n") if text.strip() else []
