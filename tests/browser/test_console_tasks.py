"""The console's "Try it" page in a real browser (Debian's headless Chromium through Selenium) with real
models, as a user would use it: a photo for the RetinaFace detector with its boxes drawn, a letter for the
Rampart PII model and Presidio's rules with each span marked, a sentence for a few-shot classifier on
all-MiniLM-L6-v2, and a photo through a pipeline (the bundled classifier, then the PII model on a caption
made from its label). Every figure on the page is checked against the API's own answer to the same input.

The models come from the test cache (``LANAI_TEST_CACHE``), shared with the integration tests; a test whose
model cannot be had is skipped. Screenshots go where test_console.py puts them.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from assets_redact import rampart
from assets_text import minilm
from assets_vision import retinaface_model

from lanai.bundled import ensure_default_model
from lanai.cli import build_parser
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.models_cli import run_models_command
from lanai.security.keys import KeyRing
from lanai.store import Store

from support import ServerThread

pytest.importorskip("selenium.webdriver", reason="selenium is in the test extra")
import test_console  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support import expected_conditions as shown  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402
from test_console import screenshot, severe_logs, use_key, wait_for  # noqa: E402

browser = test_console.browser  # the fixture: a headless Chromium for this module

BOX_COLOUR = (0xFF, 0xCC, 0x00)  # drawDetections' #ffcc00
EXAMPLES = """text,label
"INVOICE No. 4411. Amount due: EUR 1,250.00 for consulting services rendered in March. Payment within 30 days.",invoice
"Bill for services: hosting and support, total due 99.00 USD by 15 June. Invoice number 7781.",invoice
"Dear Ms. Patel, thank you for your kind letter of 3 May. We will visit you next week.",letter
"Dear John, I hope this letter finds you well. The children send their love and we miss you all.",letter
"This Agreement is entered into by and between the Parties. The Tenant shall pay rent monthly.",contract
"The Contractor agrees to deliver the works described in Schedule A. Either party may terminate this contract.",contract
"""
LETTER = (
    "Dear Ms. Clara Jansen,\n\nPlease send the signed lease to clara.jansen@example.com or call me on "
    "+44 20 7946 0958. The deposit goes to IBAN GB82 WEST 1234 5698 7654 32.\n\nKind regards,\nPeter Olsen"
)
PIPELINE = (
    '[[step]]\nname = "classify"\nmodel = "efficientnet-lite0"\ntask = "classify"\ntop_k = 3\n\n'
    '[[step]]\nname = "caption"\nmodel = "pii"\ntask = "redact"\nstyle = "tag"\n'
    'input = "A photo of a {classify.label}, sent by Clara Jansen (clara.jansen@example.com)."\n'
)


class Box:
    def __init__(self, url: str, models: set[str]) -> None:
        self.url, self.models = url, models

    def need(self, *names: str) -> None:
        missing = [n for n in names if n not in self.models]
        if missing:
            pytest.skip(f"{', '.join(missing)}: not in the test cache and not fetched (no network, or no text extra)")

    def post(self, path: str, **kwargs: object) -> dict:
        answer = httpx.post(self.url + path, timeout=120, **kwargs)  # type: ignore[arg-type]
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]


def add(home: Path, *argv: str) -> None:
    args: argparse.Namespace = build_parser().parse_args(["models", "--home", str(home), "add", *argv])
    assert run_models_command(args) == 0


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    root = tmp_path_factory.mktemp("console-tasks")
    store = Store(root / "store")
    ensure_default_model(store)
    models = {"efficientnet-lite0"}
    face = retinaface_model()
    if face is not None:
        add(store.root, str(face), "--name", "faces", "--task", "detect")
        models.add("faces")
    pii = rampart() if _has("tokenizers") and _has("presidio_analyzer") else None
    if pii is not None:
        add(store.root, str(pii.model), "--name", "pii", "--task", "redact", "--tokenizer", str(pii.tokenizer),
            "--labels", str(pii.labels))  # fmt: skip
        models.add("pii")
        (store.root / "pipelines").mkdir()
        (store.root / "pipelines" / "photo-caption.toml").write_text(PIPELINE, encoding="utf-8")
    encoder = minilm() if _has("tokenizers") else None
    if encoder is not None:
        examples = root / "examples.csv"
        examples.write_text(EXAMPLES, encoding="utf-8")
        add(store.root, str(encoder.model), "--name", "doctype", "--task", "classify-text",
            "--tokenizer", str(encoder.tokenizer), "--examples", str(examples))  # fmt: skip
        models.add("doctype")
    keys = KeyRing(store.root)  # inference stays open (auth "lan"); the browser on loopback is an admin
    keys.create("front-desk", "infer")
    keys.create("reception-pc", "infer", device=True)  # as lanai pair makes it
    settings = Settings(home=store.root, grpc=False, discovery=False, intra_op_threads=1)
    with ServerThread(DataPlane(store, settings), settings) as url:
        yield Box(url, models)


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def open_try(driver: WebDriver, box: Box, model: str) -> None:
    driver.get(f"{box.url}/ui/try?model={model}")
    use_key(driver, None)
    wait_for(driver, shown.presence_of_element_located((By.ID, "try-panel")))


def text_content(driver: WebDriver, selector: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, selector).get_property("textContent")  # type: ignore[no-any-return]


def test_a_photo_gets_its_faces_boxed(box: Box, browser: WebDriver, photos: dict[str, bytes], tmp_path: Path) -> None:
    box.need("faces")
    photo = tmp_path / "astronaut.jpg"
    photo.write_bytes(photos["astronaut"])
    expected = box.post("/v1/models/faces/detect", files={"file": ("astronaut.jpg", photos["astronaut"])})
    assert [d["label"] for d in expected["detections"]] == ["face"]

    open_try(browser, box, "faces")
    browser.find_element(By.ID, "try-file").send_keys(str(photo))
    canvas = wait_for(browser, shown.presence_of_element_located((By.ID, "detect-canvas")))
    assert (int(canvas.get_attribute("width")), int(canvas.get_attribute("height"))) == (  # type: ignore[attr-defined]
        expected["width"], expected["height"])  # fmt: skip
    rows = browser.find_elements(By.CSS_SELECTOR, "#try-result tbody tr")
    assert [r.find_element(By.TAG_NAME, "td").text for r in rows] == [d["label"] for d in expected["detections"]]
    for d in expected["detections"]:
        b = d["box"]
        # the left and top edges, halfway along: a pixel of the box's colour within a few pixels of each
        for x, y, dx, dy in ((b["x1"], (b["y1"] + b["y2"]) / 2, 1, 0), ((b["x1"] + b["x2"]) / 2, b["y2"], 0, 1)):
            pixels = browser.execute_script(
                "const [x, y, dx, dy] = arguments;"
                "const ctx = document.getElementById('detect-canvas').getContext('2d');"
                "const out = []; for (let k = -3; k <= 3; k++) out.push(Array.from(ctx.getImageData("
                "Math.round(x) + k * dx, Math.round(y) + k * dy, 1, 1).data).slice(0, 3)); return out;",
                x, y, dx, dy,
            )  # fmt: skip
            assert any(all(abs(p - c) <= 24 for p, c in zip(px, BOX_COLOUR)) for px in pixels), (d, pixels)
        inside = browser.execute_script(
            "const [x, y] = arguments; return Array.from(document.getElementById('detect-canvas').getContext('2d')"
            ".getImageData(Math.round(x), Math.round(y), 1, 1).data).slice(0, 3);",
            (b["x1"] + b["x2"]) / 2, (b["y1"] + b["y2"]) / 2,
        )  # fmt: skip
        assert not all(abs(p - c) <= 24 for p, c in zip(inside, BOX_COLOUR)), inside  # the photo, not paint
    assert "ms in the box" in browser.find_element(By.ID, "try-took").text
    screenshot(browser, "try-detect")
    assert severe_logs(browser) == []


def test_a_pasted_letter_has_its_names_and_numbers_marked(box: Box, browser: WebDriver) -> None:
    box.need("pii")
    expected = box.post("/v1/models/pii/redact", json={"text": LETTER})
    kinds = {e["type"] for e in expected["entities"]}
    assert {"PERSON", "EMAIL", "PHONE", "IBAN"} <= kinds, expected["entities"]

    open_try(browser, box, "pii")
    area = browser.find_element(By.ID, "try-text")
    area.clear()
    area.send_keys(LETTER)
    assert area.get_property("value") == LETTER
    browser.find_element(By.ID, "try-run").click()
    wait_for(browser, shown.presence_of_element_located((By.ID, "redact-marked")), 60)
    marks = [
        (m.find_element(By.TAG_NAME, "small").get_property("textContent"), m.get_property("textContent"))
        for m in browser.find_elements(By.CSS_SELECTOR, "#redact-marked mark")
    ]
    want = [(e["type"], e["text"] + e["type"]) for e in sorted(expected["entities"], key=lambda e: e["start"])]
    assert marks == want
    assert text_content(browser, "#redact-marked") == "".join(
        _marked(LETTER, sorted(expected["entities"], key=lambda e: e["start"])))  # fmt: skip
    assert text_content(browser, "#redact-text") == expected["text"]
    assert '"text"' in browser.find_element(By.CSS_SELECTOR, "pre.example").text  # the call, with the letter
    screenshot(browser, "try-redact")

    # offsets count code points: a character outside the BMP (two UTF-16 units in the page) moves nothing
    pasted = "\N{SMILING FACE WITH SMILING EYES} Write to clara.jansen@example.com today."
    expected = box.post("/v1/models/pii/redact", json={"text": pasted})
    browser.execute_script(  # as a paste: ChromeDriver cannot type characters outside the BMP
        "const area = document.getElementById('try-text'); area.value = arguments[0];"
        "area.dispatchEvent(new Event('input'));", pasted)  # fmt: skip
    browser.find_element(By.ID, "try-run").click()
    wait_for(browser, lambda d: d.execute_script(
        "const m = document.getElementById('redact-marked'); return m && m.textContent.startsWith(arguments[0])",
        pasted[:2]))  # fmt: skip
    assert text_content(browser, "#redact-marked") == "".join(_marked(pasted, expected["entities"]))
    assert text_content(browser, "#redact-text") == expected["text"]
    assert severe_logs(browser) == []


def _marked(text: str, spans: list[dict]) -> list[str]:
    """The marked text as the page's textContent reads it: each span followed by its type."""
    out, at = [], 0
    for span in spans:
        out += [text[at : span["start"]], span["text"], span["type"]]
        at = span["end"]
    return [*out, text[at:]]


def test_a_sentence_is_classified_by_the_few_shot_model(box: Box, browser: WebDriver) -> None:
    box.need("doctype")
    sentence = "Please find enclosed our bill for March: 12 hours at 80.00 per hour, amount due 960.00."
    expected = box.post("/v1/models/doctype/classify-text", json={"text": sentence})
    assert expected["label"] == "invoice"

    open_try(browser, box, "doctype")
    area = browser.find_element(By.ID, "try-text")
    area.clear()
    area.send_keys(sentence)
    browser.find_element(By.ID, "try-run").click()
    label = wait_for(browser, shown.visibility_of_element_located((By.ID, "top-label")), 60)
    assert label.text == expected["label"]  # type: ignore[attr-defined]
    rows = browser.find_elements(By.CSS_SELECTOR, "#try-result table.bars tr")
    assert [r.find_element(By.TAG_NAME, "td").text for r in rows] == [p["label"] for p in expected["predictions"]]
    assert severe_logs(browser) == []


def test_a_photo_runs_through_a_pipeline_step_by_step(
    box: Box, browser: WebDriver, photos: dict[str, bytes], tmp_path: Path
) -> None:
    box.need("pii")
    photo = tmp_path / "coffee.jpg"
    photo.write_bytes(photos["coffee"])
    expected = box.post("/v1/pipelines/photo-caption", files={"file": ("coffee.jpg", photos["coffee"])})
    assert expected["status"] == "ok" and [s["name"] for s in expected["steps"]] == ["classify", "caption"]

    open_try(browser, box, "efficientnet-lite0")
    Select(browser.find_element(By.ID, "try-model")).select_by_value("pipeline:photo-caption")
    steps = browser.find_elements(By.CSS_SELECTOR, "#try-panel ol li")
    assert [s.text for s in steps] == ["classify: classify on efficientnet-lite0", "caption: redact on pii"]
    browser.find_element(By.ID, "try-file").send_keys(str(photo))
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#try-result [data-step]")) == 2, 60)
    said = {}  # each step's heading, and its output as the page shows it (JSON)
    for step in expected["steps"]:
        where = f"#try-result [data-step='{step['name']}']"
        assert f"{step['name']} — ok" in browser.find_element(By.CSS_SELECTOR, f"{where} h3").text
        said[step["name"]] = json.loads(text_content(browser, f"{where} pre"))
    classify, caption = (step["output"] for step in expected["steps"])
    assert said["classify"]["label"] == classify["label"]
    assert [p["label"] for p in said["classify"]["predictions"]] == [p["label"] for p in classify["predictions"]]
    assert said["caption"]["text"] == caption["text"] and "[PERSON]" in caption["text"]
    screenshot(browser, "try-pipeline")
    assert severe_logs(browser) == []


def test_a_paired_device_is_listed_as_a_device_not_as_a_key(box: Box, browser: WebDriver) -> None:
    browser.get(box.url + "/ui/security")
    use_key(browser, None)
    wait_for(browser, shown.presence_of_element_located((By.ID, "devices-table")))
    keys = [r.get_attribute("data-key") for r in browser.find_elements(By.CSS_SELECTOR, "#keys-table tbody tr")]
    assert keys == ["front-desk"]
    rows = browser.find_elements(By.CSS_SELECTOR, "#devices-table tbody tr")
    devices = [r.find_element(By.TAG_NAME, "td").text for r in rows]
    assert devices == ["reception-pc"]
    assert severe_logs(browser) == []
