"""The embed task: a text in, one L2-normalised vector out.

Two kinds of model serve it. A GGUF encoder runs on llama.cpp as a language model, loaded with one
sequence and pooled outputs instead of logits (``load_options``); ``/v1/embeddings`` reaches it through
the generation engine. An ONNX transformer encoder with its ``tokenizer.json`` (``models add … --task
embed --tokenizer tokenizer.json``) runs as a tensor model behind the batcher: texts are tokenised and
chunked on the batch thread (``tasks.text``), padded to the batch's longest row, and the token states
mean-pooled over real tokens, then over a long text's windows, and normalised.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from lanai.errors import BadInput, ModelLoadError
from lanai.protocol.wire import Wire, doc
from lanai.tasks.base import Job, NoParams, RunTiming, Task, TaskModel, Timing, wire_vector
from lanai.types import ModelInfo

__all__ = ["TASK", "TextEmbedding", "DEFAULT_MAX_TOKENS", "text_encoder", "text_of"]

DEFAULT_MAX_TOKENS = 8192
"""The longest text (in tokens) a text task reads unless the model's ``--option max_tokens=`` says."""


@dataclass(frozen=True)
class TextEmbedding(Wire):
    """One text's vector."""

    model: str = doc("The model that answered.")
    version: str = doc("Its version.")
    embedding: Sequence[float] = doc("The vector, of length 1.")
    dimensions: int = doc("Its length.")
    tokens: int = doc("Tokens read (each window's, special tokens included).")
    chunks: int = doc("Windows the text was read in (more than 1 for a text longer than the model's window).")
    cached: bool = doc("Answered from the embedding cache.")
    timing: Timing = doc("Where the time went (zeros when cached).")


class Embed(Task[NoParams, TextEmbedding]):
    name = "embed"
    summary = "Embed a text"
    kind = "language"
    accepts = "text"
    backends = ("llamacpp", "onnx")
    params = NoParams
    result = TextEmbedding
    cacheable = True
    """Answers depend on the model version and the content alone: the data plane may cache them."""

    def kind_on(self, backend: str) -> Literal["tensor", "language"]:
        return "language" if backend == "llamacpp" else "tensor"

    @property
    def routed(self) -> bool:
        return True  # POST /v1/models/{m}/embed serves the ONNX encoders

    def check(self, info: ModelInfo) -> None:
        super().check(info)
        if info.backend != "llamacpp":
            from lanai.tasks.text import check_encoder

            check_encoder(info)

    def load_options(self, given: dict[str, Any]) -> dict[str, Any]:
        """The backend options an embedding model needs: one sequence at a time, and pooled outputs."""
        return {"parallel": 1, **given, "embeddings": True}

    def job(self, model: TaskModel, data: Any, params: NoParams) -> Job[TextEmbedding]:
        prepare, collate, finish = text_encoder(model, text_of(data))
        info = model.info

        def result(rows: dict[str, np.ndarray], timing: RunTiming) -> TextEmbedding:
            vector = embedding_of(rows)
            tokens = int(rows["tokens"].sum())
            return TextEmbedding(
                info.name, info.version, wire_vector(vector), len(vector), tokens, len(rows["tokens"]),
                timing.batch_size == 0, Timing.of(timing, time.perf_counter_ns()),
            )  # fmt: skip

        return Job(prepare, "text", finish, result, collate)


def embedding_of(rows: dict[str, np.ndarray]) -> np.ndarray:
    """One request's vector from its rows (a window each): pooled over windows, normalised."""
    from lanai.tasks.text import normalise, pool_chunks

    return normalise(pool_chunks(rows["vector"], rows["tokens"]))


def text_of(data: Any) -> str:
    """A request's text: a str, or UTF-8 bytes (e.g. from a pipeline's previous step)."""
    if isinstance(data, str):
        return data
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            return bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise BadInput("the text is not UTF-8.", hint="send the text as UTF-8.") from None
    raise BadInput(f"a text task takes text, not {type(data).__name__}.", hint='send {"text": "..."}.')


def text_encoder(model: TaskModel, text: str) -> tuple[Any, Any, Any]:
    """``prepare``, ``collate`` and ``finish`` for one text on an ONNX encoder: rows of token windows
    in, one pooled (not yet normalised) ``vector`` per window and its ``tokens`` out."""
    from lanai.tasks.text import Encoder, collate, mean_pool

    tokenizer = model.files.get("tokenizer")
    if tokenizer is None:
        raise ModelLoadError(
            f"model {model.info.name!r} has no tokenizer.",
            hint="add it again with --tokenizer tokenizer.json.",
        )
    max_tokens = int(model.options.get("max_tokens", DEFAULT_MAX_TOKENS))
    encoder = Encoder.of(model.info, tokenizer, dict(model.options), max_tokens)
    encoder.check(text)
    output = model.info.outputs[0].name
    masks: list[np.ndarray] = []  # the batch's mask, from collate to finish (one batch thread, in turn)

    def prepare() -> dict[str, np.ndarray]:
        return encoder.prepare(encoder.rows(text))

    def join(rows: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        joined = collate(rows, encoder.pad_id)
        masks.append(joined["attention_mask"])
        return joined

    def finish(outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        mask = masks.pop()
        states = outputs[output]
        vectors = mean_pool(states, mask) if states.ndim == 3 else states.astype(np.float32)
        return {"vector": vectors, "tokens": mask.sum(axis=1)}

    return prepare, join, finish


TASK = Embed()
