"""Applying spans to a text: the redacted text, in the style the caller chose.

- ``mask``: each character of a span becomes ``█`` (the text keeps its length and layout);
- ``tag``: a span becomes its type in brackets, ``[EMAIL]``;
- ``hash``: a span becomes its type and a short keyed hash of its text, ``[PERSON:3f9a1c2e]``, so the same
  name reads the same throughout a document set (a reader can follow who is who) without revealing it.
  The hash is an HMAC under a secret of the server's (see ``lanai.redaction`` callers), not a bare hash:
  phone numbers and dates are few enough that a bare hash could be reversed by trying them all.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Literal

from lanai.errors import BadInput
from lanai.redaction.spans import Span

__all__ = ["Style", "STYLES", "redact_text"]

Style = Literal["mask", "tag", "hash"]
STYLES: tuple[Style, ...] = ("mask", "tag", "hash")
_MASK = "\u2588"


def redact_text(text: str, spans: Sequence[Span], style: str = "mask", *, secret: bytes = b"") -> str:
    """``text`` with every span replaced in ``style``; ``spans`` must not overlap (``spans.resolve``)."""
    if style not in STYLES:
        raise BadInput(f"redaction style {style!r} is not one of {', '.join(STYLES)}.", hint="e.g. style=tag")
    if style == "hash" and not secret:
        raise ValueError("the hash style needs a secret")
    pieces: list[str] = []
    at = 0
    for span in sorted(spans, key=lambda s: s.start):
        if span.start < at:
            raise ValueError(f"spans overlap at {span.start}: resolve them first")
        pieces.append(text[at : span.start])
        pieces.append(_replacement(text[span.start : span.end], span.type, style, secret))
        at = span.end
    pieces.append(text[at:])
    return "".join(pieces)


def _replacement(original: str, kind: str, style: str, secret: bytes) -> str:
    if style == "mask":
        return "".join(c if c.isspace() else _MASK for c in original)  # line breaks stay where they were
    if style == "tag":
        return f"[{kind}]"
    digest = hmac.new(secret, f"{kind}\0{_normalise(original)}".encode(), hashlib.sha256).hexdigest()[:8]
    return f"[{kind}:{digest}]"


def _normalise(text: str) -> str:
    """The same value written twice the same way hashes the same: case and spacing do not count."""
    return " ".join(text.split()).casefold()
