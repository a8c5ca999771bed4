"""The digits example's data and trained teacher, made once per test session (a few seconds of training)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits"


@pytest.fixture(scope="session")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch", reason="lanai optimize needs the optimize extra: pip install -e '.[test]'")
    sys.path.insert(0, str(EXAMPLE))
    try:
        from prepare import prepare
    finally:
        sys.path.remove(str(EXAMPLE))
    out = tmp_path_factory.mktemp("digits")
    prepare(out)
    return out
