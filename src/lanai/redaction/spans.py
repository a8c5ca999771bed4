"""Entity spans: what a recogniser found in a text, and how findings from several recognisers become one
list without overlaps.

Offsets are Python string indices (code points) into the text as it was given, so ``text[start:end]`` is
the span's text; clients in other languages that index UTF-16 (C#, JavaScript) get ``text`` too and can
search for it when the text holds characters beyond the Basic Multilingual Plane.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lanai.protocol.wire import Wire, doc

__all__ = ["Span", "resolve"]


@dataclass(frozen=True)
class Span(Wire):
    """One thing found: its type, where it is, how sure the recogniser was, and which one found it."""

    type: str = doc("What it is: PERSON, EMAIL, PHONE, IBAN, CREDIT_CARD, DATE, ADDRESS, …")
    text: str = doc("The span's text.")
    start: int = doc("Where it starts in the text (a code-point index).", minimum=0)
    end: int = doc("Where it ends, exclusive.", minimum=0)
    score: float = doc("How sure the recogniser is, 0–1.", minimum=0, maximum=1)
    source: str = doc("Who found it: 'rules' (a pattern with its checks) or 'model:<name>'.")

    @property
    def length(self) -> int:
        return self.end - self.start

    def overlaps(self, other: Span) -> bool:
        return self.start < other.end and other.start < self.end


def resolve(found: Iterable[Span], *, min_score: float = 0.0) -> list[Span]:
    """One span per stretch of text, in text order: where spans overlap, the most certain wins (then
    the longer, then the one a model found, whose context reading beats a pattern's); spans below
    ``min_score`` and empty ones are dropped. A pattern that validates (an IBAN's or a card's check
    digits) reports a high score, so it beats a model's vaguer reading of the same digits."""
    candidates = [s for s in found if s.end > s.start and s.score >= min_score]
    candidates.sort(key=lambda s: (-s.score, -s.length, not s.source.startswith("model:"), s.start))
    kept: list[Span] = []
    for span in candidates:
        if not any(span.overlaps(k) for k in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)
