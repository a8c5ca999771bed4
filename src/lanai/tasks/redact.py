"""The redact task: what to black out in a text (names, addresses, e-mails, phone, account and card
numbers, dates…), found by a token-classification model (BIO tags, ONNX, with its ``tokenizer.json``)
together with Presidio's rules, and the text redacted in a chosen style.

- The model reads the text in overlapping windows (a long letter is read whole); a token in two windows
  gets the mean of its two readings. Its tags become entities with character offsets
  (``lanai.redaction.tokens``), renamed to lanai's vocabulary by ``entity_map`` (the model's own types
  that it does not name are kept).
- The rules (``lanai.redaction.rules``, extra ``redact``) run on a worker thread while the model reads:
  they take a tenth to a quarter of a second on a short letter, which must not hold the event loop nor
  the model's batch thread.
- Where the two overlap, the more certain wins (``lanai.redaction.spans.resolve``).

The ``hash`` style's key is the model version's own secret (``secret``, made when the model is added),
so one version gives one name the same pseudonym across a document set.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from lanai.errors import BackendUnavailable, BadInput, ModelLoadError
from lanai.protocol.wire import Wire, doc
from lanai.redaction.spans import Span, resolve
from lanai.tasks.base import Job, RunTiming, Task, TaskModel, Timing
from lanai.types import ModelInfo

__all__ = ["TASK", "RedactParams", "Redaction", "DEFAULT_ENTITY_MAP"]

DEFAULT_ENTITY_MAP: Mapping[str, str] = {
    # people
    "PER": "PERSON", "PERSON": "PERSON", "GIVEN_NAME": "PERSON", "SURNAME": "PERSON", "FIRSTNAME": "PERSON",
    "LASTNAME": "PERSON", "NAME": "PERSON",
    # where they live
    "STREET_NAME": "ADDRESS", "BUILDING_NUMBER": "ADDRESS", "SECONDARY_ADDRESS": "ADDRESS", "CITY": "ADDRESS",
    "STATE": "ADDRESS", "ZIP_CODE": "ADDRESS", "STREET": "ADDRESS", "ADDRESS": "ADDRESS",
    "LOC": "LOCATION", "GPE": "LOCATION", "ORG": "ORGANIZATION",
    # numbers
    "PHONE_NUMBER": "PHONE", "TELEPHONENUM": "PHONE", "EMAIL_ADDRESS": "EMAIL", "BANK_ACCOUNT": "ACCOUNT_NUMBER",
    "ACCOUNTNUM": "ACCOUNT_NUMBER", "ROUTING_NUMBER": "ACCOUNT_NUMBER", "CREDITCARDNUMBER": "CREDIT_CARD",
    "TAX_ID": "TAX_ID", "GOVERNMENT_ID": "ID_NUMBER", "PASSPORT": "ID_NUMBER", "DRIVERS_LICENSE": "ID_NUMBER",
    "IDCARDNUM": "ID_NUMBER", "SOCIALNUM": "ID_NUMBER", "DATEOFBIRTH": "DATE",
}  # fmt: skip
"""Common token-classification label names → lanai's; ``--option entity_map=LABEL:TYPE,…`` adds to it."""


@dataclass(frozen=True)
class RedactParams(Wire):
    """Parameters of redact."""

    style: Literal["mask", "tag", "hash"] = doc(
        "mask: each character becomes █ (the layout stays); tag: [PERSON]; hash: [PERSON:3f9a1c2e], the same "
        "for the same value (under this model version's key).",
        default="mask",
    )
    min_score: float = doc("Spans found with less certainty are left alone.", default=0.5, minimum=0, maximum=1)
    rules: bool = doc("Run the rules too (e-mail, phone, IBAN, card, IP, URL, date).", default=True)
    types: str = doc("Only these types, comma-separated (e.g. PERSON,EMAIL); empty: all.", default="")


@dataclass(frozen=True)
class Redaction(Wire):
    """What was found, and the text with it redacted."""

    model: str = doc("The model that answered.")
    version: str = doc("Its version.")
    text: str = doc("The text, redacted.")
    entities: tuple[Span, ...] = doc("What was found, in text order (offsets into the text as sent).")
    style: str = doc("How it was redacted.")
    tokens: int = doc("Tokens the model read.")
    timing: Timing = doc("Where the time went.")


class Redact(Task[RedactParams, Redaction]):
    name = "redact"
    summary = "Find and redact personal data in a text"
    kind = "tensor"
    accepts = "text"
    backends = ("onnx",)
    params = RedactParams
    result = Redaction

    def check(self, info: ModelInfo) -> None:
        super().check(info)
        names = {spec.name for spec in info.inputs}
        out = info.outputs[0].shape if info.outputs else ()
        if not {"input_ids", "attention_mask"} <= names or len(out) != 3:
            raise ModelLoadError(
                f"a redaction model is a token classifier: input_ids and attention_mask in, [N, T, labels] "
                f"out; model {info.name!r} takes {sorted(names)} and gives {list(out)}.",
                hint="export a Hugging Face *ForTokenClassification model to ONNX.",
            )

    def job(self, model: TaskModel, data: Any, params: RedactParams) -> Job[Redaction]:
        from lanai.redaction.styles import STYLES, redact_text
        from lanai.tasks.embed import text_of

        text = text_of(data)
        if params.style not in STYLES:
            raise BadInput(f"style {params.style!r} is not one of {', '.join(STYLES)}.", hint="e.g. style=tag")
        wanted = {t.strip().upper() for t in params.types.split(",") if t.strip()}
        reader = _reader(model)
        reader.check(text)
        info, labels, entity_map = model.info, _labels(model), _entity_map(model)
        secret = _secret(model)
        if params.style == "hash" and secret is None:
            raise BadInput(
                f"model {info.name!r} version {info.version} has no key to hash with.",
                hint="add the model again (lanai models add makes one), or use style=tag.",
            )
        found_by_rules = None
        if params.rules:  # on a worker thread, while the model reads
            found_by_rules = asyncio.get_running_loop().run_in_executor(None, _shared_rules().find, text)
            found_by_rules.add_done_callback(_retrieved)

        encoded: list[Any] = []  # the text's encoding, made by prepare on the batch thread, read by result

        def prepare() -> dict[str, np.ndarray]:
            encoded.append(reader.encode(text))
            return reader.prepare(encoded[0])

        def finish(outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            logits = outputs[info.outputs[0].name]
            return {"logits": logits.astype(np.float32, copy=False)}

        async def result(rows: dict[str, np.ndarray], timing: RunTiming) -> Redaction:
            spans = reader.entities(text, encoded[0], rows["logits"], labels, entity_map, info.name)
            if found_by_rules is not None:
                spans += await found_by_rules
            kept = resolve((s for s in spans if not wanted or s.type in wanted), min_score=params.min_score)
            redacted = redact_text(text, kept, params.style, secret=secret or b"")
            return Redaction(info.name, info.version, redacted, tuple(kept), params.style, len(encoded[0].ids),
                             Timing.of(timing, time.perf_counter_ns()))  # fmt: skip

        return Job(prepare, "text", finish, result, reader.collate)  # type: ignore[arg-type]


TASK = Redact()


# -- reading the text ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Reader:
    """A text as overlapping windows of tokens, and the model's tags back onto the text."""

    encoder: Any

    def check(self, text: str) -> None:
        self.encoder.check(text)

    def encode(self, text: str) -> Any:
        """Token ids with their character offsets and word ids (no special tokens)."""
        return self.encoder.tokenizer.encode(text, add_special_tokens=False)

    def prepare(self, encoding: Any) -> dict[str, np.ndarray]:
        return self.encoder.prepare(self.encoder.window_rows(encoding.ids))  # type: ignore[no-any-return]

    def collate(self, rows: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        from lanai.tasks.text import collate

        return collate(rows, self.encoder.pad_id)

    def entities(
        self, text: str, encoding: Any, logits: np.ndarray, labels: tuple[str, ...], entity_map: Mapping[str, str],
        model: str,
    ) -> list[Span]:  # fmt: skip
        """The model's entities in ``text``: each window's logits [k, T, L] mapped back to the text's tokens
        (a token two windows read gets the mean of its two readings), then decoded and merged."""
        from lanai.redaction.tokens import decode_bio, merge_entities, softmax

        count = len(encoding.ids)
        if logits.shape[-1] != len(labels):
            raise ModelLoadError(
                f"model {model!r} gives {logits.shape[-1]} labels per token but has {len(labels)} label names.",
                hint="add it again with --labels, one BIO label per line in the model's order (O, B-…, I-…).",
            )
        total = np.zeros((count, len(labels)), dtype=np.float32)
        seen = np.zeros((count, 1), dtype=np.float32)
        skip = len(self.encoder.prefix)
        for row, (a, b) in enumerate(self.encoder.windows(count)):
            total[a:b] += softmax(logits[row, skip : skip + (b - a)])
            seen[a:b] += 1
        probs = total / np.maximum(seen, 1)
        found = decode_bio(probs, encoding.offsets, encoding.word_ids, labels)
        source = f"model:{model}"
        return [
            Span(e.type, text[e.start : e.end], e.start, e.end, round(e.score, 4), source)
            for e in merge_entities(text, found, entity_map)
        ]


def _reader(model: TaskModel) -> _Reader:
    from lanai.tasks.embed import DEFAULT_MAX_TOKENS
    from lanai.tasks.text import Encoder

    tokenizer = model.files.get("tokenizer")
    if tokenizer is None:
        raise ModelLoadError(f"model {model.info.name!r} has no tokenizer.", hint="add it again with --tokenizer.")
    max_tokens = int(model.options.get("max_tokens", DEFAULT_MAX_TOKENS))
    return _Reader(Encoder.of(model.info, tokenizer, dict(model.options), max_tokens))


def _labels(model: TaskModel) -> tuple[str, ...]:
    if not model.labels:
        raise ModelLoadError(
            f"model {model.info.name!r} has no label names.",
            hint="add it again with --labels labels.txt, one BIO label per line in the model's order (O, B-…, I-…).",
        )
    return model.labels


def _entity_map(model: TaskModel) -> dict[str, str]:
    given = model.options.get("entity_map", ())
    pairs = [given] if isinstance(given, str) else list(given)
    mapping = dict(DEFAULT_ENTITY_MAP)
    for pair in pairs:
        label, sep, kind = str(pair).partition(":")
        if not sep:
            raise ModelLoadError(
                f"entity_map entry {pair!r} is not LABEL:TYPE.", hint="e.g. --option entity_map=PER:PERSON"
            )
        mapping[label.strip().upper()] = kind.strip().upper()
    return mapping


def _secret(model: TaskModel) -> bytes | None:
    path = model.files.get("secret")
    return path.read_bytes() if path is not None else None


def _retrieved(future: asyncio.Future[Any]) -> None:
    """A request that failed before its answer leaves the rules' result unread: that is no error."""
    if not future.cancelled():
        future.exception()


@functools.lru_cache(maxsize=2)
def _shared_rules() -> Any:
    from lanai.redaction.rules import RuleRecognizer, available

    if not available():
        raise BackendUnavailable(
            "the redaction rules need Presidio, which this server does not have.",
            hint="pip install 'lanai[redact]' on the server, or send rules=false.",
        )
    return RuleRecognizer()
