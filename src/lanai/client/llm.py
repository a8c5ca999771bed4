"""Language models through the OpenAI-compatible endpoints: chat, completions (whole or streamed), and
embeddings, as call descriptions (see ``api`` for the rest of the API and ``calls`` for retries).

Whole answers are the wire values the server sends (``lanai.protocol.openai``: ``ChatCompletion``,
``Completion``, OpenAI's shapes); a stream is a series of :class:`Chunk` (new text, the end, the token
counts), and embeddings are :class:`Embeddings`, one numpy row per input.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

from lanai.client.calls import Call, StreamCall, from_json, json_request, read_json, wire_decoder
from lanai.client.errors import ProtocolError, ServerError
from lanai.protocol.openai import ChatCompletion, Completion, EmbeddingList, EmbeddingUsage, Usage
from lanai.protocol.wire import WireError

__all__ = ["Chunk", "Embeddings", "Messages", "chat", "chat_stream", "complete", "complete_stream",
           "embeddings"]  # fmt: skip

Messages = str | Sequence[Mapping[str, Any]]
"""Chat messages (``[{"role": "user", "content": "Hi"}]``); a str is one user message."""


@dataclass(frozen=True)
class Chunk:
    """A piece of a streamed answer: new text, or the end (``finish_reason``), or the token counts."""

    text: str
    finish_reason: str | None = None
    usage: Usage | None = None
    """Only on the last chunk: tokens read and written."""


@dataclass(frozen=True)
class Embeddings:
    """One L2-normalised row per input, in order."""

    vectors: np.ndarray
    model: str
    usage: EmbeddingUsage


def _messages(messages: Messages) -> list[dict[str, Any]]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    return [dict(m) for m in messages]


def _body(model: str, key: str, value: Any, options: dict[str, Any], *, stream: bool) -> tuple[bytes, dict[str, str]]:
    doc = {"model": model, key: value, **{k: v for k, v in options.items() if v is not None}}
    if stream:
        doc["stream"], doc["stream_options"] = True, {"include_usage": True}
    return json_request(doc)


def _usage(doc: Any) -> Usage | None:
    if not isinstance(doc, dict):
        return None
    try:
        return Usage.from_dict({"total_tokens": 0, "prompt_tokens_details": {"cached_tokens": 0}, **doc})
    except WireError as exc:
        raise ProtocolError(f"a stream's usage is malformed: {exc}") from None


def _chunk(chat: bool) -> Callable[[Any], Chunk | None]:
    def event(doc: Any) -> Chunk | None:
        if not isinstance(doc, dict):
            raise ProtocolError(f"a stream event is not a JSON object: {str(doc)[:200]}")
        if "error" in doc:  # an error after the stream began travels in-band
            error = doc["error"]
            message = error.get("message", "error") if isinstance(error, dict) else str(error)
            text, _, hint = str(message).partition(" Hint: ")
            raise ServerError(f"the stream failed: {text}", hint=hint or None)
        usage = _usage(doc.get("usage"))
        choices = doc.get("choices") or []
        choice = choices[0] if choices and isinstance(choices[0], dict) else {}
        text = ((choice.get("delta") or {}).get("content") if chat else choice.get("text")) or ""
        finish = choice.get("finish_reason")
        if not text and finish is None and usage is None:
            return None  # the role announcement, keep-alives
        return Chunk(text, finish, usage)

    return event


def chat(
    model: str, messages: Messages, *, max_tokens: int | None = None, temperature: float | None = None,
    top_p: float | None = None, stop: str | list[str] | None = None, seed: int | None = None, **options: Any,
) -> Call[ChatCompletion]:  # fmt: skip
    """A chat answer, whole (``POST /v1/chat/completions``): ``.choices[0].message.content``.
    ``options`` go into the body as they are."""
    body, headers = _body(model, "messages", _messages(messages), {"max_tokens": max_tokens,
                          "temperature": temperature, "top_p": top_p, "stop": stop, "seed": seed, **options},
                          stream=False)  # fmt: skip
    return Call(method="POST", path="/v1/chat/completions", content=body, headers=headers,
                decode=wire_decoder(ChatCompletion))  # fmt: skip


def chat_stream(
    model: str, messages: Messages, *, max_tokens: int | None = None, temperature: float | None = None,
    top_p: float | None = None, stop: str | list[str] | None = None, seed: int | None = None, **options: Any,
) -> StreamCall[Chunk]:  # fmt: skip
    """A chat answer as it is written: chunks of text, then one with ``finish_reason``, then one with
    ``usage``. Iterate it, and close it (or use ``with``) when stopping early."""
    body, headers = _body(model, "messages", _messages(messages), {"max_tokens": max_tokens,
                          "temperature": temperature, "top_p": top_p, "stop": stop, "seed": seed, **options},
                          stream=True)  # fmt: skip
    return StreamCall(method="POST", path="/v1/chat/completions", content=body, headers=headers, event=_chunk(True))


def complete(model: str, prompt: str, *, max_tokens: int | None = None, temperature: float | None = None,
             **options: Any) -> Call[Completion]:  # fmt: skip
    """A text completion of ``prompt``, whole (``POST /v1/completions``): ``.choices[0].text``."""
    body, headers = _body(model, "prompt", prompt, {"max_tokens": max_tokens, "temperature": temperature,
                          **options}, stream=False)  # fmt: skip
    return Call(method="POST", path="/v1/completions", content=body, headers=headers,
                decode=wire_decoder(Completion))  # fmt: skip


def complete_stream(model: str, prompt: str, *, max_tokens: int | None = None, temperature: float | None = None,
                    **options: Any) -> StreamCall[Chunk]:  # fmt: skip
    """A text completion of ``prompt`` as it is written (see ``chat_stream``)."""
    body, headers = _body(model, "prompt", prompt, {"max_tokens": max_tokens, "temperature": temperature,
                          **options}, stream=True)  # fmt: skip
    return StreamCall(method="POST", path="/v1/completions", content=body, headers=headers, event=_chunk(False))


def embeddings(model: str, texts: str | Sequence[str]) -> Call[Embeddings]:
    """Embed one text or several (``POST /v1/embeddings``): an [n, dim] float32 array, row i for text i."""
    inputs = [texts] if isinstance(texts, str) else list(texts)

    def decode(response: httpx.Response) -> Embeddings:
        answer = from_json(EmbeddingList, read_json(response), response)
        try:
            rows = [_vector(item.embedding) for item in sorted(answer.data, key=lambda item: item.index)]
        except (TypeError, ValueError) as exc:
            raise ProtocolError(f"an embedding is malformed: {exc}", status=response.status_code) from None
        vectors = np.stack(rows) if rows else np.zeros((0, 0), np.float32)
        return Embeddings(vectors, answer.model, answer.usage)

    body, headers = json_request({"model": model, "input": inputs, "encoding_format": "base64"})
    return Call(method="POST", path="/v1/embeddings", content=body, headers=headers, decode=decode)


def _vector(value: Any) -> np.ndarray:
    if isinstance(value, str):  # base64 of little-endian float32: a quarter of the JSON's size
        return np.frombuffer(base64.b64decode(value), dtype="<f4").astype(np.float32)
    return np.asarray(value, dtype=np.float32)
