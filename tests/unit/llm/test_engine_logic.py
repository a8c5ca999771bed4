"""The generation engine's own logic, on a scripted language model (no llama.cpp): what it sends to the
model in each decode, how text is cut at stop strings and whole UTF-8 characters, and how a sequence's
cache is found again. The real model is tested in test_generation.py."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np

from lanai.backends.base import BatchEntry, Sampling
from lanai.generation import Chunk, Engine, GenerateRequest

END = 0


class ScriptedModel:
    """A language model whose answer is a fixed list of byte strings (one per token), then END.

    Token ids are 1 + the index in ``pieces``; every decode call is recorded."""

    platform = "scripted"
    execution_provider = "python"
    runtime_version = "0"
    chat_template = None
    bos_text = eos_text = ""

    def __init__(self, pieces: Sequence[bytes], *, parallel: int = 2, n_ctx: int = 64, n_batch: int = 8) -> None:
        self.pieces = list(pieces)
        self.parallel, self.n_ctx, self.n_batch = parallel, n_ctx, n_batch
        self.decodes: list[list[BatchEntry]] = []
        self.starts: list[tuple[int, int]] = []
        self._produced: dict[int, int] = {}

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = False) -> list[int]:
        return [100 + ord(c) for c in text]

    def piece(self, token: int) -> bytes:
        return self.pieces[token - 1]

    def is_end(self, token: int) -> bool:
        return token == END

    def start(self, seq: int, sampling: Sampling, keep: int = 0) -> None:
        self.starts.append((seq, keep))
        self._produced[seq] = 0

    def decode(self, entries: Sequence[BatchEntry]) -> dict[int, int]:
        self.decodes.append(list(entries))
        return {e.seq: i for i, e in enumerate(entries) if e.logits}

    def sample(self, seq: int, index: int) -> int:
        n = self._produced[seq]
        self._produced[seq] = n + 1
        return n + 1 if n < len(self.pieces) else END

    def release(self, seq: int) -> None:
        pass

    def clear(self, seq: int) -> None:
        pass

    def embed(self, tokens: Sequence[int]) -> np.ndarray:
        return np.ones(4, np.float32) / 2

    def close(self) -> None:
        pass


def run(engine: Engine, *requests: GenerateRequest) -> list[list[Chunk]]:
    async def main() -> list[list[Chunk]]:
        async def one(r: GenerateRequest) -> list[Chunk]:
            return [c async for c in engine.submit(r)]

        return list(await asyncio.gather(*(one(r) for r in requests)))

    try:
        return asyncio.run(main())
    finally:
        engine.close()


def text(chunks: list[Chunk]) -> str:
    return "".join(c.text for c in chunks)


def test_a_stop_string_split_across_tokens_is_held_back_and_cut() -> None:
    model = ScriptedModel([b"Hello", b" wor", b"ld", b"!", b" more"])
    [chunks] = run(Engine(model), GenerateRequest([1, 2], None, Sampling(0), stop=("world",)))
    assert text(chunks) == "Hello "  # " wor" is held while it may begin the stop string, then dropped
    assert chunks[-1].finish_reason == "stop" and chunks[-1].usage.completion_tokens == 3


def test_a_character_split_across_tokens_arrives_whole() -> None:
    snowman = "☃".encode()
    model = ScriptedModel([b"a", snowman[:1], snowman[1:], b"b"])
    [chunks] = run(Engine(model), GenerateRequest([1], None))
    assert text(chunks) == "a☃b"
    assert all("\ufffd" not in c.text for c in chunks)  # no half character was ever sent
    assert chunks[-1].finish_reason == "stop"


def test_max_tokens_ends_with_length_and_counts() -> None:
    model = ScriptedModel([b"x"] * 10)
    [chunks] = run(Engine(model), GenerateRequest([1, 2, 3], 4))
    assert text(chunks) == "xxxx" and chunks[-1].finish_reason == "length"
    assert chunks[-1].usage.prompt_tokens == 3 and chunks[-1].usage.completion_tokens == 4


def test_requests_share_each_decode_and_long_prompts_are_read_in_n_batch_chunks() -> None:
    model = ScriptedModel([b"a", b"b", b"c"], parallel=2, n_batch=8)
    long_prompt, short_prompt = list(range(1, 21)), [1, 2]
    results = run(Engine(model), GenerateRequest(long_prompt, 3), GenerateRequest(short_prompt, 3))
    assert [text(r) for r in results] == ["abc", "abc"]
    assert all(sum(len(e.tokens) for e in entries) <= 8 for entries in model.decodes)  # the budget holds
    prompt_reads = [e for entries in model.decodes for e in entries if len(e.tokens) > 1 or not e.logits]
    assert sum(len(e.tokens) for e in prompt_reads if e.seq == 0) >= 19  # the long prompt, in pieces
    shared = [entries for entries in model.decodes if len({e.seq for e in entries}) == 2]
    assert shared, "both requests should have advanced in the same decode at least once"


def test_a_new_request_reuses_the_sequence_that_shares_its_beginning() -> None:
    model = ScriptedModel([b"ok"], parallel=2)
    engine = Engine(model)

    async def main() -> None:
        for prompt in ([1, 2, 3, 4], [9, 9], [1, 2, 3, 4, 5, 6]):
            [c async for c in engine.submit(GenerateRequest(prompt, 1))]

    try:
        asyncio.run(main())
    finally:
        engine.close()
    first_seq = model.starts[0][0]
    assert model.starts[2] == (first_seq, 4)  # the third prompt found the first one's four tokens cached
    assert model.starts[1][1] == 0


def test_a_request_counts_as_busy_while_the_engine_starts_it() -> None:
    """Between leaving the queue and joining the running slots, a request is still the engine's: an idle
    check then (residency's keep_alive 0) must not see an idle model and unload it under the request."""
    import threading

    entered, go_on = threading.Event(), threading.Event()

    class SlowStart(ScriptedModel):
        def start(self, seq: int, sampling: Sampling, keep: int = 0) -> None:
            entered.set()
            go_on.wait(10)
            super().start(seq, sampling, keep)

    engine = Engine(SlowStart([b"ok"]))

    async def main() -> list[Chunk]:
        generation = engine.submit(GenerateRequest([1, 2], 2))
        assert engine.busy  # queued
        assert await asyncio.to_thread(entered.wait, 10)
        seen = engine.busy  # being started: neither queued nor running
        go_on.set()
        chunks = [c async for c in generation]
        assert seen, "the engine looked idle while it was starting a request"
        return chunks

    try:
        chunks = asyncio.run(main())
    finally:
        go_on.set()
        engine.close()
    assert text(chunks) == "ok" and not engine.busy
