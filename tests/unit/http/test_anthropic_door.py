"""The Anthropic door's pure parts: error bodies for lanai's errors, refusals of what lanai does not do,
and the stream's error event (an error after the 200 travels in-band)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.requests import Request

from lanai.errors import BadInput, ModelNotFound, Overloaded
from lanai.generation import Chunk
from lanai.http.anthropic import _anthropic_errors, _Blocks, _parse, _stream, anthropic_error


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.mark.parametrize(
    ("exc", "status", "kind"),
    [
        (BadInput("bad."), 400, "invalid_request_error"),
        (ModelNotFound("no model 'x'."), 404, "not_found_error"),
        (Overloaded("the queue is full.", retry_after=2.5), 503, "overloaded_error"),
    ],
)
def test_lanai_errors_become_anthropic_errors(exc: Exception, status: int, kind: str) -> None:
    async def endpoint(request: Any) -> Any:
        raise exc

    response = run(_anthropic_errors(endpoint)(Request({"type": "http"})))
    body = json.loads(response.body)
    assert response.status_code == status and body["type"] == "error" and body["error"]["type"] == kind
    if status == 503:
        assert response.headers["retry-after"] == "3"
    assert json.loads(anthropic_error(500, "boom").body)["error"]["type"] == "api_error"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "'max_tokens' is required"),
        ({"max_tokens": 4, "messages": [{"role": "system", "content": "hi"}]}, "user or assistant"),
        ({"max_tokens": 4, "messages": [{"role": "user", "content": [{"type": "document"}]}]}, "document block"),
        ({"max_tokens": 4, "messages": [{"role": "user", "content": [{"type": "thinking"}]}]}, "thinking block"),
        ({"max_tokens": 4, "messages": [{"role": "user", "content": "hi"}],
          "tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "server tool"),
        ({"max_tokens": 4, "messages": [{"role": "user", "content": "hi"}], "tool_choice": {"type": "any"}},
         "no 'tools'"),
        ({"max_tokens": 4, "messages": [{"role": "user", "content": "hi"}], "temperature": 1.5}, "'temperature'"),
        ({"max_tokens": 4, "messages": [{"role": "user", "content": "hi"}], "stop_sequences": [""]},
         "'stop_sequences'"),
        ({"max_tokens": 4, "messages": [{"role": "user", "content": "hi"}], "thinking": {"type": "enabled"}},
         "'thinking'"),
    ],
)  # fmt: skip
def test_what_lanai_does_not_do_is_refused_by_name(data: dict[str, Any], words: str) -> None:
    with pytest.raises(BadInput) as caught:
        _parse(data, generate=True)
    assert words in str(caught.value)


def test_tool_choice_maps_onto_lanais_choices() -> None:
    base = {"max_tokens": 4, "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"name": "f", "input_schema": {"type": "object"}}]}  # fmt: skip
    assert _parse(base, generate=True).choice.mode == "auto"
    any_ = _parse({**base, "tool_choice": {"type": "any", "disable_parallel_tool_use": True}}, generate=True)
    assert (any_.choice.mode, any_.choice.parallel) == ("required", False)
    named = _parse({**base, "tool_choice": {"type": "tool", "name": "f"}}, generate=True).choice
    assert (named.mode, named.name) == ("function", "f")
    assert not _parse({**base, "tool_choice": {"type": "none"}}, generate=True).calling


class _Failing:
    def __init__(self, chunks: list[Chunk]) -> None:
        self.chunks = chunks
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    async def __aiter__(self) -> AsyncIterator[Chunk]:
        for chunk in self.chunks:
            yield chunk


def test_an_error_after_the_start_is_an_error_event() -> None:
    generation = _Failing([Chunk("Hello"), Chunk("", "error", error="the model failed.")])

    async def read() -> list[bytes]:
        return [event async for event in _stream(generation, _Blocks(None), "msg_1", "m", 5)]

    events = run(read())
    names = [event.split(b"\n")[0].decode() for event in events]
    assert names == ["event: message_start", "event: ping", "event: content_block_start",
                     "event: content_block_delta", "event: error"]  # fmt: skip
    error = json.loads(events[-1].split(b"data: ")[1])
    assert error == {"type": "error", "error": {"type": "api_error", "message": "the model failed."}}
    assert generation.cancelled
