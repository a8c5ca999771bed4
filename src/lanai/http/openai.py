"""The OpenAI-compatible API for language models: models, chat completions, completions, embeddings.

Bodies and errors follow OpenAI's shapes (PROTOCOLS.md §2) so the official ``openai`` clients and plain
curl work unchanged. Streams are server-sent events ending with ``data: [DONE]``; an error after the
stream has begun travels in-band as an event with an ``error`` key, which those clients raise.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from lanai.dataplane import DataPlane
from lanai.dataplane.residency import parse_duration
from lanai.errors import BadInput, LanaiError
from lanai.http.auth import allow_model, caller
from lanai.http.body import json_object, read_body
from lanai.http.errors import describe, kind_of, retry_headers, status_of
from lanai.http.held import load_and_hold, release_held
from lanai.http.json_response import JSONResponse, dumps
from lanai.http.request_fields import RefusedField, check_fields
from lanai.http.whole import collect
from lanai.protocol.openai import (
    ChatChoice,
    ChatCompletion,
    ChatLogprobs,
    ChatMessage,
    Completion,
    CompletionChoice,
    CompletionLogprobs,
    Embedding,
    EmbeddingList,
    EmbeddingUsage,
    ModelCard,
    ModelList,
    TokenLogprob,
    ToolCall,
    ToolCallFunction,
    TopLogprob,
    Usage,
)
from lanai.tasks.base import wire_vector
from lanai.tasks.chat_template import ROLES, message_text
from lanai.tasks.tool_calls import (
    CallArguments,
    CallReader,
    CallStart,
    Content,
    Family,
    ToolChoice,
    forced_grammar,
    prepare_messages,
)

__all__ = ["routes"]

_MAX_STOPS = 4
_MAX_CHOICES = 16
_MAX_TOP_LOGPROBS = 20
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MAX_INPUTS = 2048
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
        finally:
            release_held(request)

    return wrapped


_Invalid = RefusedField  # a 400 whose body names the field (OpenAI's ``param``)


# -- request parsing ----------------------------------------------------------------------------------


async def _json(request: Request, plane: DataPlane) -> dict[str, Any]:
    return json_object(await read_body(request, plane.settings.max_body_bytes))


async def _model(data: dict[str, Any], plane: DataPlane, request: Request) -> str:
    name = data.get("model")
    if not isinstance(name, str) or not name:
        raise _Invalid("model", "'model' is required: the name of a loaded model.", hint="GET /v1/models lists them.")
    request.scope["lanai.model"] = name
    allow_model(request, name)
    await load_and_hold(request, plane, name)  # held until the handler returns; loaded if on demand
    plane.get(name)  # 404 for an unknown model
    keep_alive = data.get("keep_alive")
    if keep_alive is not None:  # Ollama's extension: how long the model stays loaded after this request
        try:
            plane.residency.touch(name, parse_duration(keep_alive))
        except LanaiError as exc:
            raise _Invalid("keep_alive", exc.message, hint=exc.hint) from None
    return name


def _number(data: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise _Invalid(key, f"'{key}' must be a number from {low:g} to {high:g}, not {value!r}.")
    return float(value)


def _whole(data: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _Invalid(key, f"'{key}' must be a whole number from {low} to {high}, not {value!r}.")
    return value


def _requests(data: dict[str, Any], prompt: list[int], vocabulary: int, *, chat: bool,
              grammar: str | None = None) -> list[Any]:  # fmt: skip
    """The request's answers to generate (``n`` of them, sharing the prompt), each a GenerateRequest;
    ``grammar`` (a forced tool call's) wins over ``response_format``."""
    from dataclasses import replace

    from lanai.backends.base import Sampling
    from lanai.generation import GenerateRequest

    limit = "max_completion_tokens" if data.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = data.get(limit)
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise _Invalid(limit, f"'{limit}' must be a whole number ≥ 1, not {max_tokens!r}.")
    min_tokens = _whole(data, "min_tokens", 0, 0, 1 << 30)
    if max_tokens is not None and min_tokens > max_tokens:
        raise _Invalid("min_tokens", f"'min_tokens' ({min_tokens}) is more than '{limit}' ({max_tokens}).")
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
    n = _whole(data, "n", 1, 1, _MAX_CHOICES)
    sampling = Sampling(
        temperature=_number(data, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(data, "top_p", 1.0, 0.0, 1.0),
        top_k=_whole(data, "top_k", 0, 0, vocabulary),
        min_p=_number(data, "min_p", 0.0, 0.0, 1.0),
        typical_p=_number(data, "typical_p", 1.0, 0.0, 1.0),
        mirostat=_whole(data, "mirostat", 0, 0, 2),
        mirostat_tau=_number(data, "mirostat_tau", 5.0, 0.0, 100.0),
        mirostat_eta=_number(data, "mirostat_eta", 0.1, 0.0, 1.0),
        presence_penalty=_number(data, "presence_penalty", 0.0, -2.0, 2.0),
        frequency_penalty=_number(data, "frequency_penalty", 0.0, -2.0, 2.0),
        repeat_penalty=_number(data, "repeat_penalty", 1.0, 0.0, 10.0) or 1.0,
        logit_bias=_logit_bias(data.get("logit_bias"), vocabulary),
        grammar=grammar if grammar is not None else _grammar(data) if chat else None,
        min_tokens=min_tokens,
        ignore_eos=data.get("ignore_eos") is True,
    )
    logprobs = _logprobs(data, chat=chat)
    first = GenerateRequest(prompt, max_tokens, replace(sampling, seed=seed), stops, logprobs)
    # each further answer draws its own tokens: with a seed, the next seeds, so the set is reproducible
    others = [replace(first, sampling=replace(sampling, seed=None if seed is None else seed + i)) for i in range(1, n)]
    return [first, *others]


def _logit_bias(value: Any, vocabulary: int) -> tuple[tuple[int, float], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise _Invalid("logit_bias", "'logit_bias' must be an object of token ids to biases from -100 to 100.")
    biases = []
    for key, bias in value.items():
        token = int(key) if isinstance(key, str) and key.isascii() and key.isdigit() else -1
        if not 0 <= token < vocabulary:
            raise _Invalid(
                "logit_bias",
                f"'logit_bias' names token {key!r}; this model's token ids run from 0 to {vocabulary - 1}.",
                hint="the ids are the model's own tokenizer's, not OpenAI's.",
            )
        if isinstance(bias, bool) or not isinstance(bias, (int, float)) or not -100 <= bias <= 100:
            raise _Invalid("logit_bias", f"'logit_bias' for token {key} must be a number from -100 to 100.")
        biases.append((token, float("-inf") if bias <= -100 else float(bias)))
    return tuple(biases)


def _logprobs(data: dict[str, Any], *, chat: bool) -> int | None:
    """How many alternatives to report per token (None: no log probabilities)."""
    if chat:
        wanted = data.get("logprobs")
        if wanted is not None and not isinstance(wanted, bool):
            raise _Invalid("logprobs", "'logprobs' must be true or false.")
        top = _whole(data, "top_logprobs", 0, 0, _MAX_TOP_LOGPROBS)
        if data.get("top_logprobs") is not None and not wanted:
            raise _Invalid("top_logprobs", "'top_logprobs' needs 'logprobs': true.")
        return top if wanted else None
    if data.get("logprobs") is None:
        return None
    return _whole(data, "logprobs", 0, 0, _MAX_TOP_LOGPROBS)


def _grammar(data: dict[str, Any]) -> str | None:
    """The grammar for ``response_format``: JSON (an object), or JSON matching the given schema."""
    from lanai.tasks.structured import json_grammar

    form = data.get("response_format")
    if form is None:
        return None
    kind = form.get("type") if isinstance(form, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return json_grammar(None)
    if kind == "json_schema":
        spec = form.get("json_schema")
        if not isinstance(spec, dict):
            raise _Invalid("response_format", "'response_format.json_schema' must be an object with a 'schema'.")
        try:
            return json_grammar(spec.get("schema"), where="response_format.json_schema.schema")
        except BadInput as exc:
            raise _Invalid("response_format", exc.message, hint=exc.hint) from None
    raise _Invalid("response_format", "'response_format.type' must be text, json_object or json_schema.")


def _messages(data: dict[str, Any]) -> list[dict[str, Any]]:
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _Invalid("messages", "'messages' must be a non-empty list of {role, content} objects.")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise _Invalid(f"messages[{i}]", f"messages[{i}] needs a 'role' among {', '.join(ROLES)}.")
        item: dict[str, Any] = {"role": message["role"], "content": message_text(message.get("content"), i)}
        if message["role"] == "assistant" and message.get("tool_calls") is not None:
            item["tool_calls"] = _history_calls(message["tool_calls"], i)
        if message["role"] == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise _Invalid(f"messages[{i}]", f"messages[{i}] is a tool result without its 'tool_call_id'.",
                               hint="give the id of the call it answers.")  # fmt: skip
            item["tool_call_id"] = call_id
            if isinstance(message.get("name"), str):
                item["name"] = message["name"]
        out.append(item)
    return out


def _history_calls(calls: Any, index: int) -> list[dict[str, Any]]:
    """An earlier assistant turn's tool calls, as the client sends them back."""
    where = f"messages[{index}].tool_calls"
    if not isinstance(calls, list):
        raise _Invalid(where, f"{where} must be a list of calls.")
    out = []
    for j, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _Invalid(where, f"{where}[{j}] needs a 'function' with a 'name' and 'arguments'.")
        arguments = function.get("arguments", "{}")
        if not isinstance(arguments, (str, dict)):
            raise _Invalid(where, f"{where}[{j}].function.arguments must be a JSON string.")
        out.append({"id": str(call.get("id", "")), "type": "function",
                    "function": {"name": function["name"], "arguments": arguments}})  # fmt: skip
    return out


def _tools(data: dict[str, Any]) -> tuple[list[Any], Any]:
    """The request's tools and tool choice (``tasks.tool_calls``)."""
    from lanai.tasks.tool_calls import Tool, ToolChoice

    given = data.get("tools")
    tools = []
    if given is not None:
        if not isinstance(given, list):
            raise _Invalid("tools", "'tools' must be a list of {type: function, function: {name, parameters}}.")
        for i, tool in enumerate(given):
            function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
            name = function.get("name") if isinstance(function, dict) else None
            if not isinstance(name, str) or not _TOOL_NAME.match(name):
                raise _Invalid("tools", f"tools[{i}] needs type 'function' and a function name of letters, digits, "
                               "'_' and '-' (at most 64).")  # fmt: skip
            assert isinstance(function, dict)
            parameters = function.get("parameters", {"type": "object", "properties": {}})
            if not isinstance(parameters, dict):
                raise _Invalid("tools", f"tools[{i}].function.parameters must be a JSON Schema object.")
            description = function.get("description") or ""
            tools.append(Tool(name, str(description), parameters))
        if len({t.name for t in tools}) != len(tools):
            raise _Invalid("tools", "two tools have the same name.")
    parallel = data.get("parallel_tool_calls", True)
    if not isinstance(parallel, bool):
        raise _Invalid("parallel_tool_calls", "'parallel_tool_calls' must be true or false.")
    choice = data.get("tool_choice", "auto" if tools else "none")
    if choice in ("auto", "none", "required"):
        if choice == "required" and not tools:
            raise _Invalid("tool_choice", "'tool_choice' is 'required' but no 'tools' were given.")
        return tools, ToolChoice(choice, None, parallel)
    function = choice.get("function") if isinstance(choice, dict) and choice.get("type") == "function" else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str):
        raise _Invalid("tool_choice", "'tool_choice' must be auto, none, required or "
                       '{"type": "function", "function": {"name": ...}}.')  # fmt: skip
    if name not in {t.name for t in tools}:
        raise _Invalid("tool_choice", f"'tool_choice' names {name!r}, which is not among the tools.")
    return tools, ToolChoice("function", name, parallel)


# -- endpoints ----------------------------------------------------------------------------------------


async def list_models(request: Request) -> Response:
    plane: DataPlane = request.app.state.plane
    who = caller(request)
    cards = []
    for m in plane.models.values():
        if who.allows_model(m.name):
            expires = plane.residency.status(m.name)["expires_at"]
            cards.append(ModelCard(m.name, "model", int(m.loaded_at), "lanai", m.info.task, "loaded",
                                   None if expires is None else int(expires)))  # fmt: skip
    for summary in plane.store.list():  # models that load on demand, not loaded now
        name = summary.name
        if name in plane.models or summary.active is None or not plane.residency.on_demand(name):
            continue
        if who.allows_model(name):
            state = plane.residency.status(name)["state"]
            cards.append(ModelCard(name, "model", 0, "lanai", summary.task, state))
    return JSONResponse(ModelList("list", tuple(cards)).to_dict())


@_openai_errors
async def chat_completions(request: Request) -> Response:
    plane: DataPlane = request.app.state.plane
    data = await _json(request, plane)
    check_fields(data, "POST /v1/chat/completions")
    name = await _model(data, plane, request)
    messages = _messages(data)
    tools, choice = _tools(data)
    family = plane.tool_family(name)
    calling = tools and choice.mode != "none"
    rendered, described = prepare_messages(family, messages, tools if calling else [])
    prompt = plane.chat_prompt(name, rendered, described)
    if not calling:
        return await _respond(request, plane, name, data, prompt, chat=True)
    forced = None
    if choice.mode in ("required", "function"):
        if data.get("response_format") not in (None, {"type": "text"}):
            raise _Invalid("response_format", "'response_format' and a required tool call cannot both shape "
                           "the answer.", hint="leave one of them out.")  # fmt: skip
        try:
            forced = forced_grammar(family, tools, choice)
        except BadInput as exc:
            raise _Invalid("tools", exc.message, hint=exc.hint) from None
    return await _respond(request, plane, name, data, prompt, chat=True, calls=_Calls(family, choice, forced))


@_openai_errors
async def completions(request: Request) -> Response:
    plane: DataPlane = request.app.state.plane
    data = await _json(request, plane)
    check_fields(data, "POST /v1/completions")
    name = await _model(data, plane, request)
    prompt = data.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise _Invalid("prompt", "'prompt' must be a string (one prompt per request).")
    return await _respond(request, plane, name, data, plane.text_prompt(name, prompt), chat=False)


@dataclass(frozen=True)
class _Calls:
    """A chat request that offers tools: how the model writes calls, the choice, and the grammar that
    forces a call (None: the model may answer in words)."""

    family: Family
    choice: ToolChoice
    grammar: str | None

    def reader(self) -> CallReader:
        return CallReader(self.family, parallel=self.choice.parallel and self.family.parallel)


async def _respond(
    request: Request, plane: DataPlane, name: str, data: dict[str, Any], prompt: list[int], *, chat: bool,
    calls: _Calls | None = None,
) -> Response:  # fmt: skip
    grammar = calls.grammar if calls is not None else None
    requests = _requests(data, prompt, plane.vocabulary_size(name), chat=chat, grammar=grammar)
    asked = requests[0].logprobs is not None
    generations = plane.generate_many(name, requests)
    ident = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    if data.get("stream"):
        options = data.get("stream_options") or {}
        usage = bool(options.get("include_usage")) if isinstance(options, dict) else False
        events = _stream(generations, ident, created, name, chat=chat, include_usage=usage, logprobs=asked, calls=calls)
        return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    answers = await collect(request, generations)
    if answers is None:  # the client went away; its slots are free again
        return Response(status_code=499)
    for chunks in answers:
        if chunks[-1].error:
            return openai_error(500, chunks[-1].error, "server_error")
    tokens = _total_usage([chunks[-1].usage for chunks in answers])
    if chat:
        choices = tuple(
            _chat_choice(i, chunks, _chat_logprobs(chunks, asked), calls) for i, chunks in enumerate(answers)
        )
        return JSONResponse(ChatCompletion(ident, "chat.completion", created, name, choices, tokens).to_dict())
    texts = tuple(
        CompletionChoice(i, _text(chunks), _completion_logprobs(chunks, asked), chunks[-1].finish_reason)
        for i, chunks in enumerate(answers)
    )  # fmt: skip
    return JSONResponse(Completion(ident, "text_completion", created, name, texts, tokens).to_dict())


def _text(chunks: Sequence[Any]) -> str:
    return "".join(chunk.text for chunk in chunks)


def _chat_choice(index: int, chunks: Sequence[Any], logprobs: ChatLogprobs | None, calls: _Calls | None) -> ChatChoice:
    text, finish = _text(chunks), chunks[-1].finish_reason
    if calls is None:
        return ChatChoice(index, ChatMessage("assistant", text), finish, logprobs)
    reader = calls.reader()
    events = reader.feed(text) + reader.finish()
    content = "".join(e.text for e in events if isinstance(e, Content))
    found: dict[int, list[str]] = {}
    for event in events:
        if isinstance(event, CallStart):
            found[event.index] = [event.id, event.name, ""]
        elif isinstance(event, CallArguments):
            found[event.index][2] += event.text
    tool_calls = tuple(ToolCall(i, "function", ToolCallFunction(n, a)) for i, n, a in found.values())
    if not tool_calls:
        return ChatChoice(index, ChatMessage("assistant", content), finish, logprobs)
    message = ChatMessage("assistant", content.strip() or None, tool_calls)
    return ChatChoice(index, message, "tool_calls" if finish == "stop" else finish, logprobs)


async def _merged(generations: Sequence[Any]) -> AsyncIterator[tuple[int, Any]]:
    """The chunks of several generations as they come, each with its answer's index."""
    if len(generations) == 1:
        async for chunk in generations[0]:
            yield 0, chunk
        return
    queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()

    async def pump(index: int, generation: Any) -> None:
        try:
            async for chunk in generation:
                await queue.put((index, chunk))
        finally:
            await queue.put((index, None))

    pumps = [asyncio.create_task(pump(i, g)) for i, g in enumerate(generations)]
    try:
        remaining = len(pumps)
        while remaining:
            index, chunk = await queue.get()
            if chunk is None:
                remaining -= 1
            else:
                yield index, chunk
    finally:
        for task in pumps:
            task.cancel()
        for generation in generations:
            generation.cancel()


async def _stream(
    generations: Sequence[Any],
    ident: str,
    created: int,
    model: str,
    *,
    chat: bool,
    include_usage: bool,
    logprobs: bool,
    calls: _Calls | None = None,
) -> AsyncIterator[bytes]:
    kind = "chat.completion.chunk" if chat else "text_completion"
    readers = [calls.reader() for _ in generations] if calls is not None else None

    def event(choices: list[dict], usage: dict | None = None) -> bytes:
        body = {"id": ident, "object": kind, "created": created, "model": model, "choices": choices}
        if include_usage:
            body["usage"] = usage
        return b"data: " + dumps(body) + b"\n\n"

    def choice(index: int, chunk: Any | None, finish: str | None = None) -> dict:
        text = chunk.text if chunk is not None else None
        if not chat:
            legacy = _completion_logprobs([chunk], logprobs) if chunk is not None else None
            return {"index": index, "text": text or "", "logprobs": legacy and legacy.to_dict(),
                    "finish_reason": finish}  # fmt: skip
        delta: dict[str, Any] = {"role": "assistant"} if chunk is None else {}
        if chunk is None:
            delta["content"] = ""
        elif readers is not None:
            delta.update(_call_delta(readers[index], text or "", final=finish is not None))
            if finish == "stop" and readers[index].calls:
                finish = "tool_calls"
        elif text or finish is None:
            delta["content"] = text or ""
        tokens = _chat_logprobs([chunk], logprobs) if chunk is not None else None
        return {"index": index, "delta": delta, "logprobs": tokens and tokens.to_dict(), "finish_reason": finish}

    if chat:
        yield event([choice(i, None) for i in range(len(generations))])
    usages = []
    async for index, chunk in _merged(generations):
        if chunk.error:
            error = {"error": {"message": chunk.error, "type": "server_error", "param": None, "code": None}}
            yield b"data: " + dumps(error) + b"\n\n"
            break
        if chunk.finish_reason is None:
            body = choice(index, chunk)
            if chat and readers is not None and not body["delta"] and body["logprobs"] is None:
                continue  # text held back: it may begin a call
            yield event([body])
            continue
        yield event([choice(index, chunk, chunk.finish_reason)])
        usages.append(chunk.usage)
    else:
        if include_usage:
            yield event([], _total_usage(usages).to_dict())
    yield b"data: [DONE]\n\n"


def _call_delta(reader: CallReader, text: str, *, final: bool) -> dict[str, Any]:
    """A chunk's delta under tools: its content, and its tool calls as OpenAI streams them (the first piece
    of a call carries its id and name, the rest pieces of its arguments)."""
    events = reader.feed(text) + (reader.finish() if final else [])
    content = "".join(e.text for e in events if isinstance(e, Content))
    calls: list[dict[str, Any]] = []
    for e in events:
        if isinstance(e, CallStart):
            function = {"name": e.name, "arguments": ""}
            calls.append({"index": e.index, "id": e.id, "type": "function", "function": function})
        elif isinstance(e, CallArguments):
            if calls and calls[-1]["index"] == e.index:
                calls[-1]["function"]["arguments"] += e.text
            else:
                calls.append({"index": e.index, "function": {"arguments": e.text}})
    delta: dict[str, Any] = {}
    if content:
        delta["content"] = content
    if calls:
        delta["tool_calls"] = calls
    return delta


def _total_usage(usages: Sequence[Any]) -> Usage:
    """One request's tokens: its prompt once (read once for every answer), every answer's tokens."""
    first = usages[0] if usages else None
    if first is None:
        return Usage.of(0, 0, 0)
    completion = sum(u.completion_tokens for u in usages if u is not None)
    return Usage.of(first.prompt_tokens, completion, first.cached_tokens)


def _token_text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _chat_logprobs(chunks: Sequence[Any], asked: bool) -> ChatLogprobs | None:
    if not asked:
        return None
    entries = [entry for chunk in chunks for entry in chunk.logprobs]
    return ChatLogprobs(tuple(
        TokenLogprob(_token_text(e.text), e.logprob, tuple(e.text),
                     tuple(TopLogprob(_token_text(t), lp, tuple(t)) for _, t, lp in e.top))
        for e in entries
    ))  # fmt: skip


def _completion_logprobs(chunks: Sequence[Any], asked: bool) -> CompletionLogprobs | None:
    if not asked:
        return None
    entries = [entry for chunk in chunks for entry in chunk.logprobs]
    tokens, offsets, at = [], [], 0
    for entry in entries:
        tokens.append(_token_text(entry.text))
        offsets.append(at)
        at += len(tokens[-1])
    return CompletionLogprobs(
        tuple(tokens), tuple(e.logprob for e in entries),
        tuple(_by_text(e.top) for e in entries), tuple(offsets),
    )  # fmt: skip


def _by_text(top: Sequence[tuple[int, bytes, float]]) -> dict[str, float]:
    """The legacy shape keys alternatives by text: of tokens with the same text (e.g. pieces of characters,
    all U+FFFD), the likeliest one's figure stands."""
    found: dict[str, float] = {}
    for _, text, logprob in top:
        found.setdefault(_token_text(text), logprob)
    return found


def _usage(usage: Any) -> Usage:
    if usage is None:
        return Usage.of(0, 0, 0)
    return Usage.of(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)


@_openai_errors
async def embeddings(request: Request) -> Response:
    plane: DataPlane = request.app.state.plane
    data = await _json(request, plane)
    check_fields(data, "POST /v1/embeddings")
    name = await _model(data, plane, request)
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
    dimensions = None if data.get("dimensions") is None else _whole(data, "dimensions", 0, 1, 1 << 16)
    vectors, tokens = await plane.embed(name, inputs, dimensions)
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
