"""The OpenAI-compatible API for language models: models, chat completions, completions, embeddings.

Bodies and errors follow OpenAI's shapes (PROTOCOLS.md §2) so the official ``openai`` clients and plain
curl work unchanged. Streams are server-sent events ending with ``data: [DONE]``; an error after the
stream has begun travels in-band as an event with an ``error`` key, which those clients raise.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from lanai.dataplane import DataPlane
from lanai.errors import BadInput, LanaiError
from lanai.http.auth import allow_model, caller
from lanai.http.body import json_object, read_body
from lanai.http.errors import describe, kind_of, retry_headers, status_of
from lanai.http.json_response import JSONResponse, dumps
from lanai.protocol.openai import (
    ChatChoice,
    ChatCompletion,
    ChatMessage,
    Completion,
    CompletionChoice,
    Embedding,
    EmbeddingList,
    EmbeddingUsage,
    ModelCard,
    ModelList,
    Usage,
)
from lanai.tasks.base import wire_vector
from lanai.tasks.chat_template import ROLES, message_text

__all__ = ["routes"]

_MAX_STOPS = 4
_MAX_INPUTS = 2048
_DISCONNECT_POLL_S = 0.25
Endpoint = Callable[[Request], Awaitable[Response]]


def openai_error(status: int, message: str, kind: str, *, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> Response:  # fmt: skip
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status, headers=headers)


def _openai_errors(endpoint: Endpoint) -> Endpoint:
    """lanai's errors as OpenAI error bodies, with the same status codes as the rest of the API."""

    async def wrapped(request: Request) -> Response:
        try:
            return await endpoint(request)
        except LanaiError as exc:
            status = status_of(exc)
            headers = retry_headers(exc)
            kind = {404: "not_found_error", 413: "invalid_request_error", 503: "server_error"}.get(
                status, "invalid_request_error"
            )
            code = {"ModelNotFound": "model_not_found", "VersionNotFound": "model_not_found",
                    "Overloaded": "overloaded", "NotReady": "not_ready"}.get(kind_of(exc))  # fmt: skip
            return openai_error(
                status, describe(exc), kind, param=getattr(exc, "param", None), code=code, headers=headers
            )

    return wrapped


class _Invalid(BadInput):
    def __init__(self, param: str, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.param = param


# -- request parsing ----------------------------------------------------------------------------------


async def _json(request: Request, plane: DataPlane) -> dict[str, Any]:
    return json_object(await read_body(request, plane.settings.max_body_bytes))


def _model(data: dict[str, Any], plane: DataPlane, request: Request) -> str:
    name = data.get("model")
    if not isinstance(name, str) or not name:
        raise _Invalid("model", "'model' is required: the name of a loaded model.", hint="GET /v1/models lists them.")
    request.scope["lanai.model"] = name
    allow_model(request, name)
    plane.get(name)  # 404 for an unknown model
    return name


def _number(data: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise _Invalid(key, f"'{key}' must be a number from {low:g} to {high:g}, not {value!r}.")
    return float(value)


def _request(data: dict[str, Any], prompt: list[int]) -> Any:
    from lanai.backends.base import Sampling
    from lanai.generation import GenerateRequest

    max_tokens = data.get("max_completion_tokens", data.get("max_tokens"))
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise _Invalid("max_tokens", f"'max_tokens' must be a whole number ≥ 1, not {max_tokens!r}.")
    stop = data.get("stop")
    if stop is None:
        stops: tuple[str, ...] = ()
    elif isinstance(stop, str):
        stops = (stop,)
    elif isinstance(stop, list) and len(stop) <= _MAX_STOPS and all(isinstance(s, str) and s for s in stop):
        stops = tuple(stop)
    else:
        raise _Invalid("stop", f"'stop' must be a string or a list of up to {_MAX_STOPS} non-empty strings.")
    seed = data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise _Invalid("seed", f"'seed' must be a whole number, not {seed!r}.")
    n = data.get("n", 1)
    if n != 1:
        raise _Invalid("n", "lanai generates one choice per request ('n' must be 1).", hint="send n requests.")
    sampling = Sampling(
        temperature=_number(data, "temperature", 1.0, 0.0, 2.0), top_p=_number(data, "top_p", 1.0, 0.0, 1.0), seed=seed
    )
    return GenerateRequest(prompt, max_tokens, sampling, stops)


def _messages(data: dict[str, Any]) -> list[dict[str, str]]:
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _Invalid("messages", "'messages' must be a non-empty list of {role, content} objects.")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise _Invalid(f"messages[{i}]", f"messages[{i}] needs a 'role' among {', '.join(ROLES)}.")
        out.append({"role": message["role"], "content": message_text(message.get("content"), i)})
    return out


def _unsupported(data: dict[str, Any], *keys: str) -> None:
    for key in keys:
        if data.get(key):
            raise _Invalid(key, f"'{key}' is not supported by lanai yet.", hint=f"leave '{key}' out.")


# -- endpoints ----------------------------------------------------------------------------------------


async def list_models(request: Request) -> Response:
    plane: DataPlane = request.app.state.plane
    who = caller(request)
    cards = tuple(
        ModelCard(m.name, "model", int(m.loaded_at), "lanai", m.info.task)
        for m in plane.models.values()
        if who.allows_model(m.name)
    )
    return JSONResponse(ModelList("list", cards).to_dict())


@_openai_errors
async def chat_completions(request: Request) -> Response:
    plane: DataPlane = request.app.state.plane
    data = await _json(request, plane)
    name = _model(data, plane, request)
    _unsupported(data, "tools", "functions", "logprobs", "response_format")
    prompt = plane.chat_prompt(name, _messages(data))
    return await _respond(request, plane, name, data, prompt, chat=True)


@_openai_errors
async def completions(request: Request) -> Response:
    plane: DataPlane = request.app.state.plane
    data = await _json(request, plane)
    name = _model(data, plane, request)
    _unsupported(data, "echo", "logprobs", "suffix")
    prompt = data.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise _Invalid("prompt", "'prompt' must be a string (one prompt per request).")
    return await _respond(request, plane, name, data, plane.text_prompt(name, prompt), chat=False)


async def _respond(
    request: Request, plane: DataPlane, name: str, data: dict[str, Any], prompt: list[int], *, chat: bool
) -> Response:
    generation = plane.generate(name, _request(data, prompt))
    ident = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    if data.get("stream"):
        options = data.get("stream_options") or {}
        usage = bool(options.get("include_usage")) if isinstance(options, dict) else False
        events = _stream(generation, ident, created, name, chat=chat, include_usage=usage)
        return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    chunks = await _collect(request, generation)
    if chunks is None:  # the client went away; its slot is free again
        return Response(status_code=499)
    texts, last = [c.text for c in chunks], chunks[-1]
    if last.error:
        return openai_error(500, last.error, "server_error")
    text, finish, tokens = "".join(texts), last.finish_reason, _usage(last.usage)
    if chat:
        choice = ChatChoice(0, ChatMessage("assistant", text), finish)
        return JSONResponse(ChatCompletion(ident, "chat.completion", created, name, (choice,), tokens).to_dict())
    answer = Completion(ident, "text_completion", created, name, (CompletionChoice(0, text, None, finish),), tokens)
    return JSONResponse(answer.to_dict())


async def _collect(request: Request, generation: Any) -> list[Any] | None:
    """Every chunk of a whole (not streamed) answer; None if the client disconnects first, which stops
    the generation: an app that gave up waiting should not keep a slot busy."""

    async def read() -> list[Any]:
        return [chunk async for chunk in generation]

    reader = asyncio.ensure_future(read())
    while True:
        done, _ = await asyncio.wait({reader}, timeout=_DISCONNECT_POLL_S)
        if done:
            return reader.result()
        if await request.is_disconnected():
            generation.cancel()
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            return None


async def _stream(
    generation: Any, ident: str, created: int, model: str, *, chat: bool, include_usage: bool
) -> AsyncIterator[bytes]:
    kind = "chat.completion.chunk" if chat else "text_completion"

    def event(choices: list[dict], usage: dict | None = None) -> bytes:
        body = {"id": ident, "object": kind, "created": created, "model": model, "choices": choices}
        if include_usage:
            body["usage"] = usage
        return b"data: " + dumps(body) + b"\n\n"

    def choice(text: str | None, finish: str | None, first: bool = False) -> dict:
        if not chat:
            return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
        delta: dict[str, str] = {"role": "assistant"} if first else {}
        if text is not None:
            delta["content"] = text
        return {"index": 0, "delta": delta, "finish_reason": finish}

    if chat:
        yield event([choice("", None, first=True)])
    async for chunk in generation:
        if chunk.error:
            error = {"error": {"message": chunk.error, "type": "server_error", "param": None, "code": None}}
            yield b"data: " + dumps(error) + b"\n\n"
            break
        if chunk.finish_reason is None:
            yield event([choice(chunk.text, None)])
            continue
        last_text = (chunk.text or None) if chat else chunk.text
        yield event([choice(last_text, chunk.finish_reason)])
        if include_usage:
            yield event([], _usage(chunk.usage).to_dict())
    yield b"data: [DONE]\n\n"


def _usage(usage: Any) -> Usage:
    if usage is None:
        return Usage.of(0, 0, 0)
    return Usage.of(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)


@_openai_errors
async def embeddings(request: Request) -> Response:
    plane: DataPlane = request.app.state.plane
    data = await _json(request, plane)
    name = _model(data, plane, request)
    texts = data.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise _Invalid("input", "'input' must be a string or a non-empty list of strings.")
    if len(texts) > _MAX_INPUTS:
        raise _Invalid("input", f"'input' holds {len(texts)} items; at most {_MAX_INPUTS} per request.",
                       hint="send them in several requests.")  # fmt: skip
    encoding = data.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise _Invalid("encoding_format", "'encoding_format' must be 'float' or 'base64'.")
    inputs: list[str | bytes] = list(texts)
    if plane.get(name).info.task == "embed-image":  # an image encoder: each input is an encoded image
        inputs = [_image(text, i) for i, text in enumerate(texts)]
    vectors, tokens = await plane.embed(name, inputs)
    items = tuple(Embedding("embedding", i, _encode(v, encoding)) for i, v in enumerate(vectors))
    return JSONResponse(EmbeddingList("list", items, name, EmbeddingUsage(tokens, tokens)).to_dict())


def _image(text: str, index: int) -> bytes:
    """An image input of /v1/embeddings: a data URL (``data:image/jpeg;base64,…``) or bare base64."""
    payload = text.partition(",")[2] if text.startswith("data:") else text
    try:
        return base64.b64decode(payload, validate=True)
    except ValueError:
        raise _Invalid(
            f"input[{index}]",
            f"input[{index}] is not a base64 image.",
            hint="an image encoder takes images as data URLs: data:image/jpeg;base64,...",
        ) from None


def _encode(vector: np.ndarray, encoding: str) -> Sequence[float] | str:
    if encoding == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode()
    return wire_vector(vector)


def routes() -> list[Route]:
    return [
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
    ]
