"""Presidio's rules, as lanai runs them: offline, in lanai's entity names, with their check digits, on a
letter of the kind a law office redacts."""

from __future__ import annotations

import pytest

from lanai.errors import BadInput
from lanai.redaction.rules import RuleRecognizer
from lanai.redaction.spans import resolve

LETTER = """Dear Ms. Clara Jansen,

following our call on 14 March 2025, please send the signed lease to clara.jansen@example.com or call
me on +44 20 7946 0958. The deposit goes to IBAN GB82 WEST 1234 5698 7654 32; the card on file ends the
number 4111 1111 1111 1111. Our portal (https://portal.example.org/case/8812) logged you in from 203.0.113.7.

Kind regards,
Peter Olsen
"""


@pytest.fixture(scope="module")
def rules() -> RuleRecognizer:
    return RuleRecognizer()


def found(rules: RuleRecognizer, text: str) -> dict[str, list[str]]:
    kinds: dict[str, list[str]] = {}
    for span in resolve(rules.find(text), min_score=0.3):
        assert text[span.start : span.end] == span.text
        kinds.setdefault(span.type, []).append(span.text)
    return kinds


def test_the_rules_find_what_rules_find_best(rules: RuleRecognizer) -> None:
    kinds = found(rules, LETTER)
    assert kinds["EMAIL"] == ["clara.jansen@example.com"]
    assert kinds["PHONE"] == ["+44 20 7946 0958"]
    assert kinds["IBAN"] == ["GB82 WEST 1234 5698 7654 32"]
    assert kinds["CREDIT_CARD"] == ["4111 1111 1111 1111"]
    assert kinds["IP_ADDRESS"] == ["203.0.113.7"]
    assert any("portal.example.org" in url for url in kinds["URL"])
    assert any("14 March 2025" in date for date in kinds["DATE"])
    assert "PERSON" not in kinds  # names are the served model's job unless asked for


def test_check_digits_count(rules: RuleRecognizer) -> None:
    bad = "IBAN GB00 WEST 1234 5698 7654 32 and card 4111 1111 1111 1112."
    kinds = found(rules, bad)
    assert "IBAN" not in kinds and "CREDIT_CARD" not in kinds


def test_spacy_can_add_names_and_unknown_types_are_refused() -> None:
    kinds = found(RuleRecognizer(with_ner=True), LETTER)
    assert "Clara Jansen" in kinds["PERSON"] and "Peter Olsen" in kinds["PERSON"]
    with pytest.raises(BadInput, match="SHOE_SIZE"):
        RuleRecognizer(["EMAIL", "SHOE_SIZE"])
    assert RuleRecognizer().find("   ") == []
