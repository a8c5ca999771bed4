"""Server-sent events, parsed the way openai-python parses them, and chat chunks decoded from them."""

from __future__ import annotations

import json

import pytest

from lanai.client.errors import ProtocolError, ServerError
from lanai.client.llm import Chunk, _chunk
from lanai.client.streams import DONE, SSEDecoder
from lanai.protocol.openai import Usage


def feed(text: str) -> list[str]:
    decoder = SSEDecoder()
    found = [data for line in text.split("\n") if (data := decoder.line(line.rstrip("\r"))) is not None]
    last = decoder.end()
    return found + ([last] if last is not None else [])


def test_events_are_separated_by_blank_lines() -> None:
    assert feed('data: {"a": 1}\n\ndata: {"b": 2}\n\n') == ['{"a": 1}', '{"b": 2}']


def test_comments_other_fields_and_crlf() -> None:
    text = ': keep-alive\r\n\r\nevent: message\r\nid: 3\r\ndata:{"a": 1}\r\n\r\n'
    assert feed(text) == ['{"a": 1}']


def test_multi_line_data_joins_with_newlines_and_a_last_event_without_blank_line() -> None:
    assert feed("data: one\ndata: two\n\ndata: last") == ["one\ntwo", "last"]


def test_done_and_json() -> None:
    assert SSEDecoder.item("[DONE]", lambda doc: doc) is DONE
    assert SSEDecoder.item('{"x": 1}', lambda doc: doc) == {"x": 1}
    with pytest.raises(ProtocolError, match="not JSON"):
        SSEDecoder.item("{oops", lambda doc: doc)


def chat_event(**choice: object) -> dict:
    return {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, **choice}]}


def test_chat_chunks() -> None:
    decode = _chunk(True)
    assert decode(chat_event(delta={"role": "assistant", "content": ""}, finish_reason=None)) is None
    assert decode(chat_event(delta={"content": "Hel"}, finish_reason=None)) == Chunk("Hel")
    assert decode(chat_event(delta={}, finish_reason="stop")) == Chunk("", "stop")
    usage = {
        "prompt_tokens": 5,
        "completion_tokens": 2,
        "total_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 3},
    }
    assert decode({"choices": [], "usage": usage}) == Chunk("", None, Usage.of(5, 2, 3))


def test_completion_chunks_carry_text() -> None:
    assert _chunk(False)({"choices": [{"index": 0, "text": "ab", "finish_reason": None}]}) == Chunk("ab")


def test_an_in_band_error_raises_with_its_hint() -> None:
    error = {"error": {"message": "the model failed. Hint: retry.", "type": "server_error"}}
    with pytest.raises(ServerError, match="the stream failed: the model failed") as info:
        _chunk(True)(json.loads(json.dumps(error)))
    assert info.value.hint == "retry."
