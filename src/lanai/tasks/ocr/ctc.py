"""CTC decoding of a recogniser's output with its character set.

A CTC recogniser emits, for each of T time steps, a probability per class: class 0 is the CTC "blank",
the last class of PP-OCR recognisers is a space, and the classes between are the model's characters
(which PP-OCR ONNX exports carry in their metadata, key ``character``, one per line). Greedy decoding
takes the best class at each step, merges repeats, drops blanks; a line's confidence is the mean
probability of the characters it kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["character_table", "best_paths", "decode"]


def character_table(characters: Sequence[str]) -> tuple[str, ...]:
    """Class index → text: the blank (index 0, decodes to nothing), the characters, then a space."""
    return ("", *characters, " ")


def best_paths(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For a batch of outputs [N, T, C]: the best class at each step and its probability, both [N, T]."""
    index = probs.argmax(axis=-1)
    return index, np.take_along_axis(probs, index[..., None], axis=-1)[..., 0]


def decode(index: np.ndarray, prob: np.ndarray, table: Sequence[str]) -> tuple[str, float]:
    """One line's text and confidence from its best path (``index``, ``prob``, both [T])."""
    keep = index != 0
    keep[1:] &= index[1:] != index[:-1]
    chosen = index[keep]
    if not chosen.size:
        return "", 0.0
    text = "".join(table[i] if i < len(table) else "" for i in chosen.tolist())
    return text, float(prob[keep].mean())
