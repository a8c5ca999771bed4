"""How good a GGUF language model is, measured through lanai's own llama.cpp backend.

Two measures, both cheap enough to run on every ``lanai optimize`` of a GGUF model:

- **perplexity** on a held-out English text, read in windows of ``window`` tokens (each window starts
  with an empty cache; every token after a window's first is scored from the ones before it);
- **greedy agreement** with a reference model on short chat prompts: the reference answers greedily,
  then the candidate reads the same prompts with the reference's answers fed in (teacher forcing) and
  its own greedy choice is compared with the reference's token at every position. A prompt matches
  exactly when every choice agrees, which is exactly when the candidate's free greedy answer would be
  the same token for token.
"""

from __future__ import annotations

import codecs
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from lanai.backends.base import BackendOptions, BatchEntry
from lanai.backends.llamacpp import LlamaCppBackend

__all__ = [
    "PROMPTS",
    "HeldOutText",
    "Agreement",
    "default_text",
    "perplexity",
    "greedy_answers",
    "agreement",
]

PROMPTS = (
    "What is the capital of France?",
    "Name three primary colours.",
    "How many days are there in a week?",
    "What does a thermometer measure?",
    "Give me a synonym for happy.",
    "What is two plus five?",
    "Why do leaves change colour in autumn?",
    "Write one sentence about the sea.",
    "What language is spoken in Brazil?",
    "What is the boiling point of water at sea level?",
    "Suggest a name for a black cat.",
    "What do bees make?",
    "Explain what a noun is in one sentence.",
    "Which planet is closest to the sun?",
    "How do you say thank you in Spanish?",
    "What is the opposite of cold?",
    "List two fruits that are yellow.",
    "What is a baby dog called?",
    "Tell me a fact about the moon.",
    "What should I pack for a day at the beach?",
)
"""Short chat prompts with short, factual answers: a small model's greedy answers to them are stable."""


@dataclass(frozen=True)
class HeldOutText:
    text: str
    source: str
    """What the text is and where it was read from, for the report."""


@dataclass(frozen=True)
class Agreement:
    prompts: int
    tokens: int
    """Reference tokens compared (up to the answer length per prompt)."""
    agreed: int
    exact: int
    """Prompts whose every greedy token agreed."""

    @property
    def token_rate(self) -> float:
        return self.agreed / self.tokens if self.tokens else 1.0

    @property
    def exact_rate(self) -> float:
        return self.exact / self.prompts if self.prompts else 1.0


def default_text() -> HeldOutText:
    """CPython's own licence text (LICENSE.txt beside the standard library): real English prose of
    about 3,000 tokens that every CPython installation carries, so nothing has to be downloaded or put
    in the repository. Where it is missing (some distributions strip it), the Zen of Python from the
    ``this`` module, which is always there but much shorter."""
    licence = Path(os.__file__).parent / "LICENSE.txt"
    if licence.is_file():
        return HeldOutText(licence.read_text(encoding="utf-8"), f"CPython's LICENSE.txt ({licence})")
    import this

    return HeldOutText(codecs.decode(this.s, "rot13"), "the Zen of Python (the this module)")


def load(path: Path, *, n_ctx: int, parallel: int, threads: int) -> LlamaCppBackend:
    extra = {"n_ctx": n_ctx, "parallel": parallel, "n_batch": 512, "n_threads": threads}
    return LlamaCppBackend.load(path, BackendOptions(providers=("cpu",), intra_op_threads=threads, extra=extra))


def perplexity(backend: LlamaCppBackend, text: str, *, window: int, max_tokens: int) -> tuple[float, int]:
    """The perplexity of ``text`` (its first ``max_tokens`` tokens) and the number of tokens scored."""
    tokens = backend.tokenize(text, add_special=True)[:max_tokens]
    total, scored = 0.0, 0
    step = min(backend.n_batch, window)
    for start in range(0, len(tokens) - 1, window):
        chunk = tokens[start : start + window]
        if len(chunk) < 2:
            break
        backend.clear(0)
        for offset in range(0, len(chunk), step):
            part = chunk[offset : offset + step]
            backend.decode([BatchEntry(0, [t], offset + i, True) for i, t in enumerate(part)])
            for i in range(len(part) - 1 if offset + len(part) == len(chunk) else len(part)):
                total += backend.logprob(i, chunk[offset + i + 1], 0).logprob
                scored += 1
    backend.clear(0)
    if scored == 0:
        raise ValueError("the held-out text is too short to score")
    return math.exp(-total / scored), scored


def prompt_tokens(backend: LlamaCppBackend, prompts: Sequence[str]) -> list[list[int]]:
    from lanai.tasks.chat_template import render_chat

    rendered = [
        render_chat(backend.chat_template, [{"role": "user", "content": p}], bos=backend.bos_text, eos=backend.eos_text)
        for p in prompts
    ]
    return [backend.tokenize(r, add_special=backend.add_bos, parse_special=True) for r in rendered]


def greedy_answers(backend: LlamaCppBackend, prompts: Sequence[str], max_tokens: int) -> list[list[int]]:
    """Each prompt's greedy answer, up to ``max_tokens`` tokens (with its end token if it ended)."""
    answers, _ = _run(backend, prompt_tokens(backend, prompts), max_tokens, None)
    return answers


def agreement(backend: LlamaCppBackend, prompts: Sequence[str], reference: Sequence[Sequence[int]]) -> Agreement:
    """How often ``backend``'s greedy choice is the reference answer's token, reading that answer."""
    _, agreed = _run(backend, prompt_tokens(backend, prompts), max(map(len, reference), default=0), reference)
    exact = sum(1 for a, ref in zip(agreed, reference) if a == len(ref))
    return Agreement(len(prompts), sum(map(len, reference)), sum(agreed), exact)


def _run(
    backend: LlamaCppBackend,
    prompts: list[list[int]],
    max_tokens: int,
    forced: Sequence[Sequence[int]] | None,
) -> tuple[list[list[int]], list[int]]:
    """Decode every prompt in its own sequence, all together; return the greedy answers and, with
    ``forced`` answers fed in instead, per prompt how many greedy choices matched them."""
    n = len(prompts)
    for seq in range(n):
        backend.clear(seq)
    answers: list[list[int]] = [[] for _ in range(n)]
    agreed = [0] * n
    pending = [BatchEntry(seq, tokens, 0, True) for seq, tokens in enumerate(prompts)]
    positions = [len(tokens) for tokens in prompts]
    while pending:
        following: list[BatchEntry] = []
        for batch in _calls(pending, backend.n_batch):
            for seq, row in backend.decode(batch).items():  # logits last until the next call: read them now
                choice = backend.logprob(row, 0, 1).top[0][0]
                if forced is not None:
                    expected = forced[seq][len(answers[seq])]
                    agreed[seq] += int(choice == expected)
                    choice = expected
                answers[seq].append(choice)
                limit = len(forced[seq]) if forced is not None else max_tokens
                if not backend.is_end(choice) and len(answers[seq]) < limit:
                    following.append(BatchEntry(seq, [choice], positions[seq], True))
                    positions[seq] += 1
        pending = following
    for seq in range(n):
        backend.clear(seq)
    return answers, agreed


def _calls(entries: list[BatchEntry], n_batch: int) -> Iterator[list[BatchEntry]]:
    """``entries`` in calls of at most ``n_batch`` tokens, long prompts split (logits on their last part)."""
    batch: list[BatchEntry] = []
    used = 0
    for entry in entries:
        for offset in range(0, len(entry.tokens), n_batch):
            part = entry.tokens[offset : offset + n_batch]
            if used + len(part) > n_batch:
                yield batch
                batch, used = [], 0
            last = offset + len(part) == len(entry.tokens)
            batch.append(BatchEntry(entry.seq, part, entry.pos + offset, entry.logits and last))
            used += len(part)
    if batch:
        yield batch
