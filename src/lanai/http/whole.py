"""Whole (not streamed) answers of the generation engine for the language-model doors (OpenAI,
Anthropic, Ollama): read to the end unless the client goes away first."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request

__all__ = ["collect", "collect_one"]

DISCONNECT_POLL_S = 0.25
"""How often a wait for a whole answer checks that its client is still there."""


async def collect(request: Request, generations: Sequence[Any]) -> list[list[Any]] | None:
    """Every chunk of each answer; None if the client disconnects first, which stops the generations:
    an app that gave up waiting should not keep slots busy."""

    async def read(generation: Any) -> list[Any]:
        return [chunk async for chunk in generation]

    reader = asyncio.gather(*(read(g) for g in generations))
    while True:
        done, _ = await asyncio.wait({reader}, timeout=DISCONNECT_POLL_S)
        if done:
            return list(reader.result())
        if await request.is_disconnected():
            for generation in generations:
                generation.cancel()
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            return None


async def collect_one(request: Request, generation: Any) -> list[Any] | None:
    """:func:`collect` for a request with one answer."""
    answers = await collect(request, [generation])
    return None if answers is None else answers[0]
