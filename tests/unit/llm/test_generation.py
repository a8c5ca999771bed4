"""The generation engine on a real (tiny, random-weight) GGUF model, without HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from lanai.errors import BadInput, Overloaded

from support import write_tiny_gguf

pytest.importorskip("llama_cpp", reason="the llm extra is not installed: pip install -e '.[test]'")

from lanai.backends.base import BackendOptions  # noqa: E402
from lanai.backends.llamacpp import LlamaCppBackend, Sampling  # noqa: E402
from lanai.generation import Chunk, Engine, GenerateRequest  # noqa: E402


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaCppBackend]:
    path = write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")
    backend = LlamaCppBackend.load(path, BackendOptions(extra={"n_ctx": 256, "parallel": 2, "n_threads": 1}))
    yield backend
    backend.close()


def collect(engine: Engine, request: GenerateRequest) -> list[Chunk]:
    async def run() -> list[Chunk]:
        return [chunk async for chunk in engine.submit(request)]

    return asyncio.run(run())


def test_greedy_generation_is_repeatable_and_counts_its_tokens(model: LlamaCppBackend) -> None:
    engine = Engine(model)
    try:
        prompt = model.tokenize("hello")
        runs = [collect(engine, GenerateRequest(prompt, 12, Sampling(temperature=0))) for _ in range(2)]
    finally:
        engine.close()
    texts = ["".join(c.text for c in run) for run in runs]
    assert texts[0] == texts[1] and texts[0]
    last = runs[0][-1]
    assert last.finish_reason == "length" and last.usage is not None
    assert last.usage.completion_tokens == 12 and last.usage.prompt_tokens == len(prompt)
    assert runs[1][-1].usage.cached_tokens == len(prompt) - 1  # the second run found the prompt cached


def test_generation_stops_where_the_context_is_full(model: LlamaCppBackend) -> None:
    engine = Engine(model)
    try:
        prompt = model.tokenize("abc " * 40)
        chunks = collect(engine, GenerateRequest(prompt, None, Sampling(temperature=0)))
    finally:
        engine.close()
    assert chunks[-1].finish_reason == "length"
    assert chunks[-1].usage.prompt_tokens + chunks[-1].usage.completion_tokens == model.n_ctx


def test_prompts_too_long_or_empty_and_a_full_queue_are_refused(model: LlamaCppBackend) -> None:
    engine = Engine(model, max_queue=1)

    async def run() -> None:
        with pytest.raises(BadInput, match="context holds 256 tokens"):
            engine.submit(GenerateRequest(model.tokenize("ab " * 300)))
        with pytest.raises(BadInput, match="empty"):
            engine.submit(GenerateRequest([]))
        prompt = model.tokenize("x")
        with engine._wake:  # hold the engine thread back from admitting, so the queue fills for sure
            waiting = engine.submit(GenerateRequest(prompt, 4))
            with pytest.raises(Overloaded, match="1 requests are already waiting"):
                engine.submit(GenerateRequest(prompt, 4))
        chunks = [chunk async for chunk in waiting]  # and once let go, the waiting one runs
        assert chunks[-1].finish_reason in ("length", "stop")  # the random model may draw its end token

    try:
        asyncio.run(run())
    finally:
        engine.close(timeout=0)


def test_a_caller_who_went_away_gives_up_its_place_in_the_queue(model: LlamaCppBackend) -> None:
    """Found by the soak: clients that drop a waiting chat request must not fill the queue for live ones."""
    engine = Engine(model, max_queue=2)

    async def run() -> None:
        prompt = model.tokenize("x")
        with engine._wake:  # the engine thread cannot admit anyone meanwhile: the queue stays as we fill it
            for _ in range(2):
                engine.submit(GenerateRequest(prompt, 4)).cancel()  # sent, then the client went away
            live = [engine.submit(GenerateRequest(prompt, 4)) for _ in range(2)]  # the gone ones made room
            with pytest.raises(Overloaded, match="2 requests are already waiting"):
                engine.submit(GenerateRequest(prompt, 4))  # but the live ones still count
        for generation in live:
            chunks = [chunk async for chunk in generation]
            assert chunks[-1].finish_reason in ("length", "stop")  # the random model may draw its end token

    try:
        asyncio.run(run())
    finally:
        engine.close(timeout=0)


def test_closing_tells_waiting_readers_instead_of_leaving_them_hanging(model: LlamaCppBackend) -> None:
    engine = Engine(model)

    async def run() -> list[Chunk]:
        generation = engine.submit(GenerateRequest(model.tokenize("x"), None))
        reader = asyncio.ensure_future(_read(generation))
        await asyncio.sleep(0)
        await asyncio.to_thread(engine.close, 0)
        return await asyncio.wait_for(reader, 5)

    chunks = asyncio.run(run())
    # unloaded, or (fast machine) done first: the context filled, or the random model drew its end token
    assert chunks[-1].finish_reason in ("error", "length", "stop")
    if chunks[-1].finish_reason == "error":
        assert "unloaded" in (chunks[-1].error or "")


async def _read(generation: object) -> list[Chunk]:
    return [chunk async for chunk in generation]  # type: ignore[attr-defined]


def test_a_path_is_a_model_file(tmp_path: Path) -> None:
    from lanai.errors import ModelLoadError

    bogus = tmp_path / "x.gguf"
    bogus.write_bytes(b"GGUF but not really")
    with pytest.raises(ModelLoadError, match="llama.cpp cannot load x.gguf"):
        LlamaCppBackend.load(bogus, BackendOptions(extra={"n_ctx": 64, "parallel": 1}))
