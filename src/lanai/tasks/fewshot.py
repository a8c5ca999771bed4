"""A few-shot text classifier head: the centroid of each class's example embeddings.

``lanai models add encoder.onnx --task classify-text --tokenizer tokenizer.json --examples examples.csv``
reads ``text,label`` rows (a few per class), embeds each text with the encoder as the embed task does
(mean-pooled over real tokens, L2-normalised), and keeps one unit vector per class: the normalised mean of
its examples. A text's class is the nearest centroid by cosine similarity; its scores are the softmax of
the similarities times ``scale`` (a temperature fixed at 20, so that a similarity lead of 0.1 is about
7:1). The head is a small JSON file stored with the model version (role ``head``); ``models show``
prints its classes.

Nearest-centroid rather than a logistic head: with three to ten examples per class it has nothing to
overfit, needs no solver, and adding a class is adding a row.
"""

from __future__ import annotations

import csv
import functools
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lanai.errors import BadInput, ModelLoadError

__all__ = ["Head", "read_examples", "build_head", "embed_texts", "MAX_EXAMPLES"]

MAX_EXAMPLES = 10_000
SCALE = 20.0
_KIND = "nearest-centroid"
_HINT = "a CSV file of text,label rows (a header row text,label is optional), a few rows per class"


@dataclass(frozen=True)
class Head:
    """Unit centroids [C, H] of the classes ``labels``, and how many examples made each."""

    labels: tuple[str, ...]
    centroids: np.ndarray
    examples: tuple[int, ...]
    scale: float = SCALE

    def probabilities(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Softmax scores [N, C] and cosine similarities [N, C] of unit ``vectors`` [N, H]."""
        similarity = vectors.astype(np.float32) @ self.centroids.T
        logits = similarity * self.scale
        exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return exp / exp.sum(axis=-1, keepdims=True), similarity

    def to_json(self) -> bytes:
        data = {
            "kind": _KIND,
            "labels": list(self.labels),
            "examples": list(self.examples),
            "scale": self.scale,
            "centroids": [[round(float(x), 7) for x in row] for row in self.centroids],
        }
        return json.dumps(data, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes, *, source: str = "head") -> Head:
        try:
            parsed = json.loads(data)
            if parsed.get("kind") != _KIND:
                raise ValueError(f"kind {parsed.get('kind')!r} is not {_KIND!r}")
            labels = tuple(str(label) for label in parsed["labels"])
            centroids = np.asarray(parsed["centroids"], dtype=np.float32)
            examples = tuple(int(n) for n in parsed["examples"])
            if centroids.ndim != 2 or len(centroids) != len(labels) or len(examples) != len(labels):
                raise ValueError("its labels, centroids and example counts do not match")
            return cls(labels, centroids, examples, float(parsed.get("scale", SCALE)))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelLoadError(f"the classifier head {source} is not valid: {exc}",
                                 hint="add the model again with --examples.") from exc  # fmt: skip

    def summary(self) -> str:
        classes = ", ".join(f"{label} ({n})" for label, n in zip(self.labels, self.examples))
        return f"few-shot head ({_KIND}, {self.centroids.shape[1]} dimensions): {classes}"


@functools.lru_cache(maxsize=16)
def load_head(path: Path) -> Head:
    """The head in the blob at ``path`` (its content never changes)."""
    return Head.from_json(path.read_bytes(), source=path.name)


def read_examples(data: bytes, *, source: str = "examples") -> list[tuple[str, str]]:
    """``text,label`` rows; BadInput saying what is wrong (not UTF-8, a short row, one class only…)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadInput(f"{source} is not UTF-8 text.", hint=_HINT) from None
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if rows and [cell.strip().lower() for cell in rows[0]] == ["text", "label"]:
        rows = rows[1:]
    examples = []
    for number, row in enumerate(rows, 1):
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise BadInput(f"{source}: row {number} is not a text and a label: {row!r}.", hint=_HINT)
        examples.append((row[0].strip(), row[1].strip()))
    if len(examples) > MAX_EXAMPLES:
        raise BadInput(f"{source} has {len(examples)} rows; a few-shot head takes at most {MAX_EXAMPLES}.")
    if len({label for _, label in examples}) < 2:
        raise BadInput(f"{source} names fewer than two classes.", hint=_HINT)
    return examples


def build_head(vectors: np.ndarray, labels: Sequence[str]) -> Head:
    """The head of unit example ``vectors`` [N, H] with their ``labels``: classes in first-seen order."""
    from lanai.tasks.text import normalise

    classes = tuple(dict.fromkeys(labels))
    order = np.asarray([classes.index(label) for label in labels])
    centroids = np.stack([vectors[order == i].mean(axis=0) for i in range(len(classes))])
    counts = tuple(int((order == i).sum()) for i in range(len(classes)))
    return Head(classes, normalise(centroids), counts)


def embed_texts(model: Path, tokenizer: Path, options: dict[str, Any], texts: Sequence[str]) -> np.ndarray:
    """Unit embeddings [N, H] of ``texts`` by the ONNX encoder ``model``, in-process, as the embed task
    makes them (for building a head at ``models add``, before the model is in the store)."""
    from lanai.backends import BackendOptions
    from lanai.backends.onnx import OnnxBackend
    from lanai.tasks.embed import DEFAULT_MAX_TOKENS
    from lanai.tasks.text import Encoder, check_encoder, collate, mean_pool, normalise, pool_chunks
    from lanai.types import ModelInfo

    backend = OnnxBackend.load(model, BackendOptions(providers=("cpu",)))
    try:
        info = ModelInfo(model.name, "0", "classify-text", "onnx", backend.platform, backend.inputs,
                         backend.outputs, "cpu", 1)  # fmt: skip
        check_encoder(info)
        encoder = Encoder.of(info, tokenizer, options, int(options.get("max_tokens", DEFAULT_MAX_TOKENS)))
        output = info.outputs[0].name
        found = []
        for text in texts:
            inputs = collate([encoder.prepare(encoder.rows(text))], encoder.pad_id)
            states = backend.run(inputs)[output]
            mask = inputs["attention_mask"]
            vectors = mean_pool(states, mask) if states.ndim == 3 else states
            found.append(normalise(pool_chunks(vectors, mask.sum(axis=1))))
        return np.stack(found)
    finally:
        backend.close()
