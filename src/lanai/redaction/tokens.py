"""From a token-classification model's output to entity spans of the text: BIO tags over word pieces,
decided per word, joined into entities with character offsets, renamed and merged.

A word's tag is its first piece's (models are trained that way; later pieces of a word often repeat ``B-``,
as in ``ol ##sen`` → ``B-SURNAME B-SURNAME``). ``B-X`` opens an entity, ``I-X`` continues an open ``X``
(and opens one when none is open: models are not always consistent), ``O`` closes. An entity's score is
the mean of its words' probabilities. Then ``entity_map`` renames the model's types to lanai's (say
``GIVEN_NAME`` and ``SURNAME`` → ``PERSON``), and entities of the same type that only spaces separate
become one ("Clara" + "Jansen" is one person), as do an address's parts with commas between ("221B" +
"Baker Street" + "London"); two names with a comma between stay two.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Entity", "decode_bio", "merge_entities", "softmax"]

_SPACES = re.compile(r"\s*")
_SPACES_AND_COMMAS = re.compile(r"[\s,]*")
_LISTED = ("ADDRESS",)
"""Types whose parts a comma separates ("Baker Street, London"); two names with a comma between are two."""


@dataclass(frozen=True)
class Entity:
    type: str
    start: int
    end: int
    score: float


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)  # type: ignore[no-any-return]


def decode_bio(
    probs: np.ndarray, offsets: Sequence[tuple[int, int]], word_ids: Sequence[int | None], labels: Sequence[str]
) -> list[Entity]:
    """Entities from one sequence: ``probs`` [T, L] (per token, over ``labels``), each token's character
    ``offsets`` and ``word_ids`` (None for special tokens), as a ``tokenizers`` encoding gives them."""
    best = probs.argmax(axis=-1)
    words: list[tuple[str, int, int, float]] = []  # tag, start, end, probability; in word order
    index: dict[int, int] = {}
    for token, word in enumerate(word_ids):
        if word is None:
            continue
        start, end = offsets[token]
        if word not in index:
            index[word] = len(words)
            label = int(best[token])
            words.append((labels[label], start, end, float(probs[token, label])))
        else:  # a later piece of the word: it widens the word, its tag does not count
            tag, first, _, p = words[index[word]]
            words[index[word]] = (tag, first, max(end, words[index[word]][2]), p)
    entities: list[Entity] = []
    open_type: str | None = None
    start = end = 0
    scores: list[float] = []

    def close() -> None:
        nonlocal open_type
        if open_type is not None:
            entities.append(Entity(open_type, start, end, float(np.mean(scores))))
        open_type = None

    for tag, w_start, w_end, p in words:
        prefix, _, kind = tag.partition("-")
        if tag == "O" or not kind:
            close()
            continue
        if prefix == "I" and open_type == kind:
            end = max(end, w_end)
            scores.append(p)
            continue
        close()
        open_type, start, end, scores = kind, w_start, w_end, [p]
    close()
    return entities


def merge_entities(text: str, entities: Sequence[Entity], entity_map: Mapping[str, str] | None = None) -> list[Entity]:
    """Rename by ``entity_map`` (types it does not name keep theirs), then join neighbours of one type that
    only spaces separate (or commas too, for an address)."""
    renamed = sorted(
        (Entity((entity_map or {}).get(e.type, e.type), e.start, e.end, e.score) for e in entities),
        key=lambda e: e.start,
    )
    merged: list[Entity] = []
    weights: list[int] = []
    for entity in renamed:
        if merged:
            last = merged[-1]
            between = text[last.end : entity.start]
            joinable = _SPACES_AND_COMMAS if entity.type in _LISTED else _SPACES
            if last.type == entity.type and entity.start >= last.end and joinable.fullmatch(between):
                n = weights[-1]
                merged[-1] = Entity(last.type, last.start, entity.end, (last.score * n + entity.score) / (n + 1))
                weights[-1] = n + 1
                continue
        merged.append(entity)
        weights.append(1)
    return merged
