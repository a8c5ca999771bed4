"""The contracts backends fulfil, and the options the data plane hands them.

There are two kinds. A **tensor backend** (ONNX Runtime, LiteRT, …) runs batches of named tensors and
sits behind a batcher. A **language backend** (llama.cpp) holds a context of several sequences that the
generation engine decodes together, token by token. Neither pretends to be the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lanai.types import TensorSpec

__all__ = ["TensorBackend", "LanguageBackend", "BackendOptions", "Sampling", "BatchEntry", "TokenLogprob"]


@dataclass(frozen=True)
class BackendOptions:
    """Runtime settings for a backend; ``extra`` carries the manifest's backend-specific options.

    ``providers`` lists execution providers (or delegates) in priority order; the backend uses the first
    one that loads. ``intra_op_threads`` 0 lets the runtime choose.
    """

    providers: tuple[str, ...] = ("cpu",)
    intra_op_threads: int = 0
    inter_op_threads: int = 1
    graph_optimization: str = "all"
    allow_spinning: bool = False
    """Let idle runtime threads spin instead of sleeping: lower latency, but they burn CPU."""
    extra: dict[str, Any] = field(default_factory=dict)


class TensorBackend(Protocol):
    """A loaded tensor model on one runtime. ``run`` is called from one worker thread at a time."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    platform: str
    """Open Inference Protocol platform string, e.g. ``onnx_onnxv1``."""
    execution_provider: str
    """The provider or delegate actually running the model, e.g. ``CPUExecutionProvider``."""
    runtime_version: str
    max_batch_size: int
    """1 when the model's batch axis is fixed at 1; 0 when it takes any batch size."""

    @classmethod
    def load(cls, path: Path, options: BackendOptions) -> TensorBackend: ...

    def run(self, inputs: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        """Run one batch; every input has the batch axis first. Releases the GIL while computing."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Sampling:
    """How to pick each next token: ``temperature`` ≤ 0 is greedy (the likeliest allowed token).

    Applied in this order: ``logit_bias`` (token id → added to its logit; -100 bans it), the penalties on
    tokens already generated (``repeat_penalty`` divides, ``frequency_penalty`` subtracts per occurrence,
    ``presence_penalty`` once), ``grammar`` (a GBNF grammar whose ``root`` rule every answer must match),
    then ``top_k``, ``typical_p``, ``top_p``, ``min_p``, ``temperature`` and the seeded draw. With
    ``mirostat`` 1 or 2, ``temperature`` and then Mirostat's own draw (aiming at a surprise of
    ``mirostat_tau``, learning at ``mirostat_eta``) take the place of top-k, typical, top-p and min-p, as
    in llama.cpp."""

    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    top_k: int = 0
    """0: off."""
    min_p: float = 0.0
    typical_p: float = 1.0
    """Locally typical sampling; 1: off."""
    mirostat: int = 0
    """0: off; 1: Mirostat; 2: Mirostat 2.0."""
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repeat_penalty: float = 1.0
    """1: off."""
    penalty_last_n: int = 64
    """How many of the latest tokens the penalties look at."""
    logit_bias: tuple[tuple[int, float], ...] = ()
    grammar: str | None = None
    min_tokens: int = 0
    """The model's end-of-generation tokens are banned until this many tokens are drawn."""
    ignore_eos: bool = False
    """Banned throughout: the answer ends at max_tokens, a stop string or a full context."""


@dataclass(frozen=True)
class TokenLogprob:
    """A generated token's log probability under the model (before sampling settings), and the likeliest
    alternatives at its position, best first."""

    token: int
    text: bytes
    logprob: float
    top: tuple[tuple[int, bytes, float], ...] = ()


@dataclass(frozen=True)
class BatchEntry:
    """Tokens of one sequence to decode at positions ``pos``, ``pos + 1``, …; ``logits`` asks for the
    next-token scores after the last of them."""

    seq: int
    tokens: Sequence[int]
    pos: int
    logits: bool


class LanguageBackend(Protocol):
    """A language model with one context of ``parallel`` sequences of ``n_ctx`` tokens each.

    Tokenising may happen on any thread; everything that computes (``decode``, ``sample``, ``embed``)
    is called from the generation engine's one thread.
    """

    platform: str
    execution_provider: str
    runtime_version: str
    parallel: int
    n_ctx: int
    n_batch: int
    """Tokens one ``decode`` call may carry."""
    chat_template: str | None
    bos_text: str
    eos_text: str

    @classmethod
    def load(cls, path: Path, options: BackendOptions) -> LanguageBackend: ...

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = False) -> list[int]: ...

    def piece(self, token: int) -> bytes:
        """The bytes of ``token`` (a piece of a UTF-8 character, possibly)."""
        ...

    def is_end(self, token: int) -> bool: ...

    def start(self, seq: int, sampling: Sampling, keep: int = 0) -> None:
        """Begin a request on sequence ``seq``, keeping its first ``keep`` cached tokens."""
        ...

    def decode(self, entries: Sequence[BatchEntry]) -> dict[int, int]:
        """Decode every entry in one pass; returns, per sequence that asked for logits, its logits row."""
        ...

    n_vocab: int

    def sample(self, seq: int, index: int) -> int: ...

    def logprob(self, index: int, token: int, top: int) -> TokenLogprob:
        """``token``'s log probability at batch row ``index`` of the last ``decode``, with the ``top``
        likeliest tokens there."""
        ...

    def save_state(self, seq: int) -> bytes:
        """Sequence ``seq``'s cache, as bytes the same model can load again (``load_state``)."""
        ...

    def load_state(self, seq: int, state: bytes) -> bool:
        """Replace sequence ``seq``'s cache with a saved one; False if it cannot be read."""
        ...

    def fork(self, source: int, target: int) -> None:
        """Copy sequence ``source``'s cache into ``target`` (started already): a prompt read once serves
        several answers."""
        ...

    def release(self, seq: int) -> None:
        """The request on ``seq`` ended; its cache stays for the next one."""
        ...

    def clear(self, seq: int) -> None:
        """Forget everything sequence ``seq`` holds."""
        ...

    def embed(self, tokens: Sequence[int]) -> np.ndarray:
        """The L2-normalised, mean-pooled embedding of ``tokens``."""
        ...

    def close(self) -> None: ...
