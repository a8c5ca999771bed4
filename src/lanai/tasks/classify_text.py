"""The classify-text task: a text in, its best labels out, from a transformer encoder.

Either the model ends in a classifier head (logits ``[N, C]``, with ``--labels``), or it is a plain
encoder (token states ``[N, T, H]``) and the version carries a few-shot head built from labelled examples
at ``models add … --examples examples.csv`` (``tasks.fewshot``). Texts are tokenised, chunked and padded
as for the embed task (``tasks.text``); a long text's windows are pooled before its head is applied.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from lanai.errors import ModelLoadError
from lanai.protocol.wire import Wire, doc
from lanai.tasks.base import Job, RunTiming, Task, TaskModel, Timing
from lanai.tasks.classify import MAX_TOP_K, Prediction, order_of, ranked, to_probabilities
from lanai.types import ModelInfo

__all__ = ["TASK", "TextClassification", "ClassifyTextParams"]


@dataclass(frozen=True)
class ClassifyTextParams(Wire):
    """Parameters of classify-text."""

    top_k: int = doc("How many classes to return.", default=5, minimum=1, maximum=MAX_TOP_K)


@dataclass(frozen=True)
class TextClassification(Wire):
    """The best classes of a text, best first."""

    model: str = doc("The model that answered.")
    version: str = doc("Its version.")
    label: str = doc("The best label.")
    score: float = doc("The best label's probability.")
    predictions: tuple[Prediction, ...] = doc("The best classes, best first.")
    tokens: int = doc("Tokens read (each window's, special tokens included).")
    chunks: int = doc("Windows the text was read in (more than 1 for a text longer than the model's window).")
    timing: Timing = doc("Where the time went.")


class ClassifyText(Task[ClassifyTextParams, TextClassification]):
    name = "classify-text"
    summary = "Classify a text"
    kind = "tensor"
    accepts = "text"
    backends = ("onnx",)
    params = ClassifyTextParams
    result = TextClassification

    def check(self, info: ModelInfo) -> None:
        from lanai.tasks.text import check_encoder

        super().check(info)
        check_encoder(info)

    def job(self, model: TaskModel, data: Any, params: ClassifyTextParams) -> Job[TextClassification]:
        from lanai.tasks.embed import text_encoder, text_of
        from lanai.tasks.text import normalise, pool_chunks

        prepare, collate, finish = text_encoder(model, text_of(data))
        info, k = model.info, params.top_k
        head, labels = _head(model)

        def result(rows: dict[str, np.ndarray], timing: RunTiming) -> TextClassification:
            pooled = pool_chunks(rows["vector"], rows["tokens"])[np.newaxis]
            if head is not None:  # ranked on the cosine similarities the probabilities are made from
                probs, scores = head.probabilities(normalise(pooled))
            else:
                probs, scores = to_probabilities(pooled), pooled
            predictions = ranked(probs[0], order_of(scores[0]), labels, k)
            best, tokens = predictions[0], int(rows["tokens"].sum())
            return TextClassification(
                info.name, info.version, best.label, best.score, tuple(predictions), tokens,
                len(rows["tokens"]), Timing.of(timing, time.perf_counter_ns()),
            )  # fmt: skip

        return Job(prepare, "text", finish, result, collate)


def _head(model: TaskModel) -> tuple[Any, tuple[str, ...]]:
    """The version's few-shot head and its labels, or (None, the labels file) for a model with logits."""
    from lanai.tasks.fewshot import load_head

    path = model.files.get("head")
    if path is not None:
        head = load_head(path)
        return head, head.labels
    if len(model.info.outputs[0].shape) != 2:
        raise ModelLoadError(
            f"model {model.info.name!r} gives token states, not class scores, and has no few-shot head.",
            hint="add it again with --examples examples.csv (text,label rows), or use it with --task embed.",
        )
    return None, model.labels


TASK = ClassifyText()
