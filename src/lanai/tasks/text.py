"""Text through a transformer encoder: tokenising, chunking, padding a batch, pooling.

The encoder is an ONNX model taking ``input_ids`` and ``attention_mask`` (and ``token_type_ids`` if it
has them) and giving token states ``[N, T, H]`` (pooled here: the mean over real tokens) or one vector
per row ``[N, H]``. Its tokenizer is a Hugging Face ``tokenizer.json``, read with the ``tokenizers``
library (``pip install 'lanai[text]'``).

A text longer than the model's window is cut into windows that overlap by ``overlap`` tokens; each
window is one row (with its own [CLS] … [SEP]), and the text's vector is the mean of its windows'
vectors weighted by their token counts, so a long document is read whole and answered as one.

Padding: the rows of one batch are padded to the batch's longest row (:func:`collate`), on the batch
thread, instead of bucketing lengths into the batch key: a request's length is only known once it is
tokenised, which happens on the batch thread, and one key lets any texts share a batch. Masked pads do
not change a row's result (within float error, which the tests bound).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lanai.errors import BackendUnavailable, BadInput, ModelLoadError
from lanai.types import ModelInfo

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["Encoder", "TextRows", "load_tokenizer", "collate", "mean_pool", "pool_chunks", "normalise",
           "check_encoder", "special_tokens", "DEFAULT_WINDOW"]  # fmt: skip

DEFAULT_WINDOW = 512
"""The window when neither the manifest nor the tokenizer names one (BERT-style position tables)."""
_IDS, _MASK, _TYPES = "input_ids", "attention_mask", "token_type_ids"
_MAX_CHARS_PER_TOKEN = 32
"""A text longer than this many characters per allowed token is refused before it is tokenised."""


@functools.lru_cache(maxsize=16)
def load_tokenizer(path: Path) -> tuple[Tokenizer, int | None, int]:
    """The tokenizer in ``path`` (a blob: its content never changes), with its own padding and
    truncation turned off (lanai pads batches and chunks long texts itself); the truncation length and
    padding id the file named."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise BackendUnavailable("text models need the tokenizers library.", hint="pip install 'lanai[text]'") from None
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception for a bad file
        raise ModelLoadError(f"{path.name} is not a tokenizer.json: {exc}") from exc
    truncation, padding = tokenizer.truncation or {}, tokenizer.padding or {}
    pad_id = int(padding.get("pad_id", _token_id(tokenizer, "[PAD]", 0)))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    length = truncation.get("max_length")
    return tokenizer, None if length is None else int(length), pad_id


def check_encoder(info: ModelInfo) -> None:
    """ModelLoadError unless the model takes token ids and an attention mask, as [N, T] integers."""
    names = {spec.name: spec for spec in info.inputs}
    if _IDS not in names or _MASK not in names or set(names) - {_IDS, _MASK, _TYPES}:
        given = ", ".join(names) or "none"
        raise ModelLoadError(
            f"a text encoder takes input_ids and attention_mask (and optionally token_type_ids); "
            f"model {info.name!r} takes {given}.",
            hint="export the encoder with those input names (Hugging Face's ONNX exports have them).",
        )
    if not info.outputs or len(info.outputs[0].shape) not in (2, 3):
        raise ModelLoadError(
            f"a text encoder gives token states [N, T, H] or vectors [N, H]; model {info.name!r} does not.",
            hint="its first output should be last_hidden_state or a pooled embedding.",
        )


@dataclass(frozen=True)
class TextRows:
    """One text as rows of token ids: a row per window, each ``length`` tokens long (real tokens)."""

    ids: list[list[int]]

    @property
    def tokens(self) -> int:
        return sum(len(row) for row in self.ids)


@dataclass(frozen=True)
class Encoder:
    """How texts become rows for one encoder: its tokenizer, window and input names."""

    tokenizer: Any
    window: int
    overlap: int
    max_tokens: int
    token_types: bool
    pad_id: int = 0
    prefix: tuple[int, ...] = ()
    """The special tokens the tokenizer puts before a text ([CLS]) and after it ([SEP])."""
    suffix: tuple[int, ...] = ()

    @classmethod
    def of(cls, info: ModelInfo, tokenizer_path: Path, options: dict[str, Any], max_tokens: int) -> Encoder:
        """The encoder of a loaded model: ``window`` from ``--option window=`` or the tokenizer's own
        truncation length, ``overlap`` from ``--option overlap=`` (default: an eighth of the window)."""
        types = any(spec.name == _TYPES for spec in info.inputs)
        window, overlap = options.get("window"), options.get("overlap")
        return _encoder(tokenizer_path, None if window is None else int(window),
                        None if overlap is None else int(overlap), max_tokens, types)  # fmt: skip

    @classmethod
    def _make(cls, path: Path, window: int | None, overlap: int | None, max_tokens: int, types: bool) -> Encoder:
        tokenizer, length, pad_id = load_tokenizer(path)
        window = window or length or DEFAULT_WINDOW
        overlap = window // 8 if overlap is None else overlap
        if window < 8 or not 0 <= overlap < window // 2:
            raise ModelLoadError(
                f"window {window} and overlap {overlap} do not fit: the window needs ≥ 8 tokens and the "
                "overlap less than half of it.",
                hint="e.g. --option window=256 --option overlap=32",
            )
        prefix, suffix = special_tokens(tokenizer)
        if window <= len(prefix) + len(suffix) + overlap:
            raise ModelLoadError(f"window {window} leaves no room for text.", hint="--option window=256")
        return cls(tokenizer, window, overlap, max_tokens, types, pad_id, prefix, suffix)

    def check(self, text: str) -> None:
        """BadInput for a text that is empty, or so long in characters that it cannot fit (cheap: run
        before the text is queued)."""
        if not text.strip():
            raise BadInput("the text is empty.", hint='send some text, e.g. {"text": "an invoice for March"}.')
        if len(text) > self.max_tokens * _MAX_CHARS_PER_TOKEN:
            raise BadInput(
                f"the text is {len(text)} characters long; this server reads at most {self.max_tokens} tokens.",
                hint="split the text, or raise the model's limit: --option max_tokens=N when adding it.",
            )

    def rows(self, text: str) -> TextRows:
        """``text`` as windows of token ids, each with the tokenizer's special tokens; BadInput if it is
        empty or longer than ``max_tokens``."""
        self.check(text)
        return self.window_rows(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def window_rows(self, plain: list[int]) -> TextRows:
        """A text's token ids (no special tokens) as windows, each with the special tokens; BadInput if
        there are more than ``max_tokens``."""
        if len(plain) > self.max_tokens:
            raise BadInput(
                f"the text is {len(plain)} tokens long; this server reads at most {self.max_tokens}.",
                hint="split the text, or raise the model's limit: --option max_tokens=N when adding it.",
            )
        return TextRows([[*self.prefix, *plain[a:b], *self.suffix] for a, b in self.windows(len(plain))])

    def windows(self, count: int) -> list[tuple[int, int]]:
        """Where each window starts and ends in a text of ``count`` tokens (special tokens not counted)."""
        room = self.window - len(self.prefix) - len(self.suffix)
        if count <= room:
            return [(0, count)]
        step = room - self.overlap
        return [(at, min(at + room, count)) for at in range(0, max(1, count - self.overlap), step)]

    def prepare(self, rows: TextRows) -> dict[str, np.ndarray]:
        """One text's rows as model inputs, padded to its own longest window."""
        return collate([self._arrays(rows)], pad_id=self.pad_id)

    def _arrays(self, rows: TextRows) -> dict[str, np.ndarray]:
        longest = max(len(row) for row in rows.ids)
        ids = np.full((len(rows.ids), longest), self.pad_id, dtype=np.int64)
        mask = np.zeros_like(ids)
        for i, row in enumerate(rows.ids):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        arrays = {_IDS: ids, _MASK: mask}
        if self.token_types:
            arrays[_TYPES] = np.zeros_like(ids)
        return arrays


@functools.lru_cache(maxsize=32)
def _encoder(path: Path, window: int | None, overlap: int | None, max_tokens: int, types: bool) -> Encoder:
    return Encoder._make(path, window, overlap, max_tokens, types)


def special_tokens(tokenizer: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The ids the tokenizer's post-processor adds before and after one text (e.g. [CLS] and [SEP]),
    found by encoding a probe with and without them."""
    plain = tokenizer.encode("probe", add_special_tokens=False).ids
    full = tokenizer.encode("probe", add_special_tokens=True).ids
    for at in range(len(full) - len(plain) + 1):
        if full[at : at + len(plain)] == plain:
            return tuple(full[:at]), tuple(full[at + len(plain) :])
    return (), ()


def _token_id(tokenizer: Any, token: str, default: int) -> int:
    found = tokenizer.token_to_id(token)
    return default if found is None else int(found)


def collate(rows: list[dict[str, np.ndarray]], pad_id: int = 0) -> dict[str, np.ndarray]:
    """Token rows of several requests ([k_i, T_i] each) as one batch [Σk, max T], padded on the right:
    ids with ``pad_id``, the mask and token types with 0."""
    longest = max(one[_IDS].shape[1] for one in rows)
    count = sum(len(one[_IDS]) for one in rows)
    joined: dict[str, np.ndarray] = {}
    for name in rows[0]:
        fill = pad_id if name == _IDS else 0
        out = np.full((count, longest), fill, dtype=rows[0][name].dtype)
        at = 0
        for one in rows:
            block = one[name]
            out[at : at + len(block), : block.shape[1]] = block
            at += len(block)
        joined[name] = out
    return joined


def mean_pool(states: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The mean of each row's token states [N, T, H] over its real tokens (mask [N, T]) → [N, H]."""
    weights = mask[..., np.newaxis].astype(np.float32)
    total = (states * weights).sum(axis=1)
    return total / np.maximum(weights.sum(axis=1), 1.0)  # type: ignore[no-any-return]


def pool_chunks(vectors: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """One text's window vectors [k, H] as one vector: their mean weighted by their token counts [k]."""
    if len(vectors) == 1:
        return vectors[0]  # type: ignore[no-any-return]
    weights = tokens.astype(np.float32) / max(float(tokens.sum()), 1.0)
    return (vectors * weights[:, np.newaxis]).sum(axis=0)  # type: ignore[no-any-return]


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Each row scaled to unit length (rows of zeros stay zeros)."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)  # type: ignore[no-any-return]
