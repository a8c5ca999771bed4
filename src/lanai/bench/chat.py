"""``lanai bench --chat MODEL``: load-test streamed chat completions, the way several desktop apps would.

Each of ``concurrency`` workers sends one streamed request after another through
:class:`lanai.client.AsyncClient` (which asks for ``stream_options.include_usage``: exact token counts).
Time to first token runs from sending the request to the first content event; a stream's speed is its
tokens after the first over the time from first to last.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from lanai.bench.report import percentiles
from lanai.client import AsyncClient, LanaiError, RetryPolicy

__all__ = ["ChatBenchConfig", "ChatBenchResult", "run_chat"]


@dataclass(frozen=True)
class ChatBenchConfig:
    url: str
    model: str
    prompt: str = "Write a short story about a robot who learns to paint."
    max_tokens: int = 64
    concurrency: int = 4
    duration: float | None = None
    requests: int | None = None
    timeout: float = 300.0
    temperature: float = 0.0
    """Greedy by default, so every run asks the same of the server."""

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.max_tokens < 1:
            raise ValueError("concurrency and max tokens must be at least 1")
        if (self.duration is None) == (self.requests is None):
            raise ValueError("give a duration or a number of requests, not both")


@dataclass
class _Stream:
    ttft_s: float
    tokens: int
    decode_s: float

    @property
    def tokens_per_second(self) -> float:
        return (self.tokens - 1) / self.decode_s if self.tokens > 1 and self.decode_s > 0 else 0.0


@dataclass
class ChatBenchResult:
    config: ChatBenchConfig
    wall_s: float = 0.0
    streams: list[_Stream] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.streams)

    def to_dict(self) -> dict[str, Any]:
        ttft = [s.ttft_s * 1e3 for s in self.streams]
        speed = [s.tokens_per_second for s in self.streams if s.tokens > 1]
        tokens = sum(s.tokens for s in self.streams)
        p = percentiles(ttft, (50, 95)) if ttft else [0.0, 0.0]
        return {
            "model": self.config.model,
            "concurrency": self.config.concurrency,
            "max_tokens": self.config.max_tokens,
            "requests": len(self.streams),
            "errors": len(self.errors),
            "first_errors": self.errors[:3],
            "wall_s": round(self.wall_s, 3),
            "ttft_ms": {"p50": round(p[0], 2), "p95": round(p[1], 2)},
            "stream_tokens_per_s": {"p50": round(percentiles(speed, (50,))[0], 2) if speed else 0.0},
            "total_tokens_per_s": round(tokens / self.wall_s, 2) if self.wall_s else 0.0,
            "completion_tokens": tokens,
        }

    def format_text(self) -> str:
        d = self.to_dict()
        return "\n".join([
            f"model        {d['model']}  (concurrency {d['concurrency']}, max_tokens {d['max_tokens']})",
            f"requests     {d['requests']} ok, {d['errors']} errors in {d['wall_s']:.2f} s",
            f"ttft         p50 {d['ttft_ms']['p50']:.1f} ms   p95 {d['ttft_ms']['p95']:.1f} ms",
            f"tokens/s     {d['stream_tokens_per_s']['p50']:.1f} per stream (p50), "
            f"{d['total_tokens_per_s']:.1f} in total",
            *[f"error        {e}" for e in d["first_errors"]],
        ])  # fmt: skip


async def _one(client: AsyncClient, config: ChatBenchConfig) -> _Stream:
    sent = time.perf_counter()
    first = last = 0.0
    tokens = 0
    stream = await client.chat_stream(
        config.model, config.prompt, max_tokens=config.max_tokens, temperature=config.temperature
    )
    async with stream:
        async for chunk in stream:
            if chunk.text:
                last = time.perf_counter()
                first = first or last
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
    if not first:
        raise RuntimeError("the stream carried no text")
    return _Stream(first - sent, tokens, last - first)


async def run_chat(config: ChatBenchConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> ChatBenchResult:
    """Run the benchmark. Each failed request is counted, never retried: a benchmark reports errors."""
    result = ChatBenchResult(config)
    remaining = config.requests
    once = RetryPolicy(attempts=1, deadline=config.timeout)
    async with AsyncClient(config.url, timeout=config.timeout, retry=once, max_connections=config.concurrency,
                           transport=transport) as client:  # fmt: skip
        start = time.perf_counter()
        stop = None if config.duration is None else start + config.duration

        async def worker() -> None:
            nonlocal remaining
            while True:
                if remaining is not None:
                    if remaining <= 0:
                        return
                    remaining -= 1
                elif stop is not None and time.perf_counter() >= stop:
                    return
                try:
                    result.streams.append(await _one(client, config))
                except (LanaiError, RuntimeError) as exc:
                    result.errors.append(f"{type(exc).__name__}: {exc}")

        await asyncio.gather(*(worker() for _ in range(config.concurrency)))
        result.wall_s = time.perf_counter() - start
    return result
