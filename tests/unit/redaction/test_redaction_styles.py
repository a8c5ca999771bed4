"""Merging spans from several recognisers and applying them to a text, in each style."""

from __future__ import annotations

import pytest

from lanai.errors import BadInput
from lanai.redaction.spans import Span, resolve
from lanai.redaction.styles import redact_text

TEXT = "Call Anna Berg on +49 30 1234567 or mail anna@berg.example today."


def span(kind: str, text: str, score: float, source: str = "rules") -> Span:
    start = TEXT.index(text)
    return Span(kind, text, start, start + len(text), score, source)


def test_overlaps_go_to_the_most_certain_then_the_longer_then_a_model() -> None:
    found = [
        span("URL", "berg.example", 0.5),
        span("EMAIL", "anna@berg.example", 1.0),
        span("PERSON", "Anna Berg", 0.85, "model:pii"),
        span("PERSON", "Anna", 0.85, "rules"),
        span("PHONE", "+49 30 1234567", 0.4),
        span("DATE", "today", 0.2),
    ]
    kept = resolve(found, min_score=0.3)
    assert [(s.type, s.text) for s in kept] == [
        ("PERSON", "Anna Berg"), ("PHONE", "+49 30 1234567"), ("EMAIL", "anna@berg.example")
    ]  # fmt: skip
    tie = resolve([span("PERSON", "Anna Berg", 0.9, "rules"), span("NAME", "Anna Berg", 0.9, "model:pii")])
    assert [s.source for s in tie] == ["model:pii"]


def test_each_style() -> None:
    spans = resolve([span("PERSON", "Anna Berg", 0.9), span("EMAIL", "anna@berg.example", 1.0)])
    masked = redact_text(TEXT, spans, "mask")
    assert len(masked) == len(TEXT) and "Anna" not in masked and "█████ ████" not in masked
    assert masked.startswith("Call ████ ████ on")
    assert redact_text(TEXT, spans, "tag") == "Call [PERSON] on +49 30 1234567 or mail [EMAIL] today."
    hashed = redact_text(TEXT, spans, "hash", secret=b"k")
    assert hashed.startswith("Call [PERSON:") and "Anna" not in hashed


def test_the_same_value_hashes_the_same_under_one_secret_only() -> None:
    one = Span("PERSON", "Anna  Berg", 0, 10, 1.0, "rules")
    two = Span("PERSON", "anna berg", 0, 9, 1.0, "rules")
    a = redact_text("Anna  Berg", [one], "hash", secret=b"k1")
    assert a == redact_text("anna berg", [two], "hash", secret=b"k1")
    assert a != redact_text("Anna  Berg", [one], "hash", secret=b"k2")


def test_mask_keeps_line_breaks_and_bad_styles_are_refused() -> None:
    text = "Anna\nBerg"
    assert redact_text(text, [Span("PERSON", text, 0, len(text), 1.0, "rules")], "mask") == "████\n████"
    with pytest.raises(BadInput, match="style"):
        redact_text(TEXT, [], "blur")
    with pytest.raises(ValueError, match="overlap"):
        redact_text(TEXT, [span("PERSON", "Anna Berg", 1), span("PERSON", "Berg", 1)], "tag")
