"""The Anthropic Messages API over lanai's language models: ``POST /v1/messages`` and
``POST /v1/messages/count_tokens``.

Desktop tools that speak Anthropic's API (and the official ``anthropic`` clients) work against a lanai box
unchanged: the conversation is turned into the same chat messages the OpenAI door renders, tool calls are
read and forced the same way (``lanai.tasks.tool_calls``), and the answer goes back as Anthropic's content
blocks, whole or as its stream of events. Errors use Anthropic's shape with lanai's statuses.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from lanai.dataplane import DataPlane
from lanai.errors import BadInput, LanaiError
from lanai.http.auth import allow_model
from lanai.http.body import json_object, read_body
from lanai.http.errors import describe, retry_headers, status_of
from lanai.http.held import load_and_hold, release_held
from lanai.http.json_response import JSONResponse, dumps
from lanai.http.request_fields import check_fields
from lanai.http.whole import collect_one
from lanai.protocol.anthropic import (
    ERROR_TYPES,
    AnthropicError,
    AnthropicErrorDetail,
    AnthropicMessage,
    AnthropicUsage,
    ContentBlock,
    StopReason,
    TokenCount,
)
from lanai.tasks.tool_calls import (
    CallArguments,
    CallReader,
    CallStart,
    Content,
    Family,
    Tool,
    ToolChoice,
    arguments_object,
    forced_grammar,
    prepare_messages,
)

__all__ = ["routes", "anthropic_error"]

_MAX_STOPS = 16
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_REFUSED_BLOCKS = {
    "image": "images",
    "document": "documents",
    "thinking": "thinking blocks",
    "redacted_thinking": "thinking blocks",
}
Endpoint = Callable[[Request], Awaitable[Response]]


def anthropic_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """An error in Anthropic's shape: ``{"type": "error", "error": {"type", "message"}}``."""
    body = AnthropicError("error", AnthropicErrorDetail(ERROR_TYPES.get(status, "api_error"), message))
    return JSONResponse(body.to_dict(), status, headers=headers)


def _anthropic_errors(endpoint: Endpoint) -> Endpoint:
    """lanai's errors as Anthropic error bodies, with the same status codes as the rest of the API."""

    async def wrapped(request: Request) -> Response:
        try:
            return await endpoint(request)
        except LanaiError as exc:
            return anthropic_error(status_of(exc), describe(exc), retry_headers(exc))
        finally:
            release_held(request)

    return wrapped


def _invalid(message: str, hint: str | None = None) -> BadInput:
    return BadInput(message, hint=hint)


# -- the request --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ask:
    """A Messages request, parsed: the chat messages to render, the tools, and how to generate."""

    messages: list[dict[str, Any]]
    tools: list[Tool]
    choice: ToolChoice
    max_tokens: int = 0
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    stops: tuple[str, ...] = ()
    stream: bool = False

    @property
    def calling(self) -> bool:
        return bool(self.tools) and self.choice.mode != "none"


async def _model(data: dict[str, Any], plane: DataPlane, request: Request) -> str:
    name = data.get("model")
    if not isinstance(name, str) or not name:
        raise _invalid("'model' is required: the name of a loaded model.", hint="GET /v1/models lists them.")
    request.scope["lanai.model"] = name
    allow_model(request, name)
    await load_and_hold(request, plane, name)  # held until the handler returns; loaded if on demand
    plane.get(name)  # 404 for an unknown model
    return name


def _parse(data: dict[str, Any], *, generate: bool) -> _Ask:
    messages = _system(data.get("system")) + _conversation(data.get("messages"))
    tools, choice = _tools(data.get("tools"), data.get("tool_choice"))
    if not generate:
        return _Ask(messages, tools, choice)
    max_tokens = data.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise _invalid(f"'max_tokens' is required: a whole number ≥ 1, not {max_tokens!r}.")
    stops = data.get("stop_sequences") or []
    if not isinstance(stops, list) or len(stops) > _MAX_STOPS or not all(isinstance(s, str) and s for s in stops):
        raise _invalid(f"'stop_sequences' must be a list of up to {_MAX_STOPS} non-empty strings.")
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise _invalid("'stream' must be true or false.")
    if data.get("metadata") is not None and not isinstance(data["metadata"], dict):
        raise _invalid("'metadata' must be an object.")
    if data.get("thinking") not in (None, {"type": "disabled"}):
        raise _invalid("'thinking' is not supported by lanai.", hint="leave 'thinking' out.")
    output = data.get("output_config")
    if isinstance(output, dict) and output.get("format") is not None:
        raise _invalid("'output_config.format' is not supported on this route.",
                       hint="POST /v1/chat/completions takes response_format with a JSON Schema.")  # fmt: skip
    return _Ask(
        messages, tools, choice, max_tokens,
        temperature=_number(data, "temperature", 1.0, 1.0), top_p=_number(data, "top_p", 1.0, 1.0),
        top_k=int(_number(data, "top_k", 0, 1 << 31, whole=True)), stops=tuple(stops), stream=stream,
    )  # fmt: skip


def _number(data: dict[str, Any], key: str, default: float, high: float, *, whole: bool = False) -> float:
    value = data.get(key)
    if value is None:
        return default
    kinds = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not 0 <= value <= high:
        kind = "a whole number" if whole else "a number"
        raise _invalid(f"'{key}' must be {kind} from 0 to {high:g}, not {value!r}.")
    return float(value)


def _system(system: Any) -> list[dict[str, Any]]:
    if system is None or system == "":
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    if isinstance(system, list):
        texts = [_text_block(block, f"system[{i}]") for i, block in enumerate(system)]
        return [{"role": "system", "content": "\n\n".join(texts)}]
    raise _invalid("'system' must be a string or a list of text blocks.")


def _text_block(block: Any, where: str) -> str:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "text" and isinstance(block.get("text"), str):
        return str(block["text"])
    _refuse_block(kind, where)
    raise _invalid(f'{where} must be a text block: {{"type": "text", "text": ...}}.')


def _refuse_block(kind: Any, where: str) -> None:
    if kind in _REFUSED_BLOCKS:
        raise _invalid(
            f"{where} is a {kind} block; lanai's language models read text only, so {_REFUSED_BLOCKS[kind]} "
            "are not supported.",
            hint="send text, tool_use and tool_result blocks.",
        )


def _conversation(messages: Any) -> list[dict[str, Any]]:
    """Anthropic's turns as chat messages: tool_result blocks become tool messages (before the rest of
    their user turn), an assistant's tool_use blocks its tool calls."""
    if not isinstance(messages, list) or not messages:
        raise _invalid("'messages' must be a non-empty list of {role, content} objects.")
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # call id → tool name, for the results that answer them
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            raise _invalid(f"messages[{i}] needs a 'role' of user or assistant.",
                           hint="the system prompt goes in 'system'.")  # fmt: skip
        assert isinstance(message, dict)
        content = message.get("content")
        if isinstance(content, str):
            out.append({"role": role, "content": content})
            continue
        if not isinstance(content, list):
            raise _invalid(f"messages[{i}].content must be a string or a list of blocks.")
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        for j, block in enumerate(content):
            where = f"messages[{i}].content[{j}]"
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "tool_use" and role == "assistant":
                calls.append(_call(block, where))
                names[calls[-1]["id"]] = calls[-1]["function"]["name"]
            elif kind == "tool_result" and role == "user":
                out.append(_result(block, where, names))
            else:
                texts.append(_text_block(block, where))
        if texts or calls or not out or out[-1]["role"] != "tool":
            item: dict[str, Any] = {"role": role, "content": "".join(texts)}
            if calls:
                item["tool_calls"] = calls
            out.append(item)
    return out


def _call(block: dict[str, Any], where: str) -> dict[str, Any]:
    ident, name, arguments = block.get("id"), block.get("name"), block.get("input", {})
    if not isinstance(ident, str) or not isinstance(name, str) or not isinstance(arguments, dict):
        raise _invalid(f"{where} is a tool_use block; it needs an 'id', a 'name' and an 'input' object.")
    return {"id": ident, "type": "function", "function": {"name": name, "arguments": arguments}}


def _result(block: dict[str, Any], where: str, names: dict[str, str]) -> dict[str, Any]:
    ident, content = block.get("tool_use_id"), block.get("content")
    if not isinstance(ident, str) or not ident:
        raise _invalid(f"{where} is a tool_result block without its 'tool_use_id'.",
                       hint="give the id of the tool_use block it answers.")  # fmt: skip
    if content is None or isinstance(content, str):
        text = content or ""
    elif isinstance(content, list):
        text = "".join(_text_block(part, f"{where}.content[{k}]") for k, part in enumerate(content))
    else:
        raise _invalid(f"{where}.content must be a string or a list of text blocks.")
    if block.get("is_error") is True:
        text = f"Error: {text}"
    message = {"role": "tool", "tool_call_id": ident, "content": text}
    if ident in names:
        message["name"] = names[ident]
    return message


def _tools(given: Any, choice: Any) -> tuple[list[Tool], ToolChoice]:
    tools = []
    if given is not None:
        if not isinstance(given, list):
            raise _invalid("'tools' must be a list of {name, description, input_schema}.")
        for i, tool in enumerate(given):
            kind = tool.get("type") if isinstance(tool, dict) else None
            if kind not in (None, "custom"):
                raise _invalid(f"tools[{i}] is Anthropic's server tool {kind!r}, which lanai does not have.",
                               hint="describe your own tools with name, description and input_schema.")  # fmt: skip
            name = tool.get("name") if isinstance(tool, dict) else None
            if not isinstance(name, str) or not _TOOL_NAME.match(name):
                raise _invalid(f"tools[{i}] needs a name of letters, digits, '_' and '-' (at most 64).")
            assert isinstance(tool, dict)
            schema = tool.get("input_schema")
            if not isinstance(schema, dict):
                raise _invalid(f"tools[{i}].input_schema must be a JSON Schema object.")
            tools.append(Tool(name, str(tool.get("description") or ""), schema))
        if len({t.name for t in tools}) != len(tools):
            raise _invalid("two tools have the same name.")
    if choice is None:
        return tools, ToolChoice("auto" if tools else "none")
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind not in ("auto", "any", "tool", "none"):
        raise _invalid("'tool_choice' must be {\"type\": auto, any, tool or none}.")
    assert isinstance(choice, dict)
    parallel = choice.get("disable_parallel_tool_use", False)
    if not isinstance(parallel, bool):
        raise _invalid("'tool_choice.disable_parallel_tool_use' must be true or false.")
    if kind in ("any", "tool") and not tools:
        raise _invalid(f"'tool_choice' is {kind!r} but no 'tools' were given.")
    if kind != "tool":
        return tools, ToolChoice({"any": "required"}.get(kind, kind), None, not parallel)  # type: ignore[arg-type]
    name = choice.get("name")
    if name not in {t.name for t in tools}:
        raise _invalid(f"'tool_choice' names {name!r}, which is not among the tools.")
    return tools, ToolChoice("function", name, not parallel)


def _prompt(plane: DataPlane, name: str, ask: _Ask) -> tuple[list[int], Family]:
    family = plane.tool_family(name)
    rendered, described = prepare_messages(family, ask.messages, ask.tools if ask.calling else [])
    return plane.chat_prompt(name, rendered, described), family


# -- endpoints ----------------------------------------------------------------------------------------


async def _body(request: Request, plane: DataPlane) -> dict[str, Any]:
    return json_object(await read_body(request, plane.settings.max_body_bytes))


@_anthropic_errors
async def count_tokens(request: Request) -> Response:
    plane: DataPlane = request.app.state.plane
    data = await _body(request, plane)
    check_fields(data, "POST /v1/messages/count_tokens")
    name = await _model(data, plane, request)
    prompt, _ = _prompt(plane, name, _parse(data, generate=False))
    return JSONResponse(TokenCount(len(prompt)).to_dict())


@_anthropic_errors
async def messages(request: Request) -> Response:
    from lanai.backends.base import Sampling
    from lanai.generation import GenerateRequest

    plane: DataPlane = request.app.state.plane
    data = await _body(request, plane)
    check_fields(data, "POST /v1/messages")
    name = await _model(data, plane, request)
    ask = _parse(data, generate=True)
    prompt, family = _prompt(plane, name, ask)
    grammar = None
    if ask.calling and ask.choice.mode in ("required", "function"):
        grammar = forced_grammar(family, ask.tools, ask.choice)
    sampling = Sampling(temperature=ask.temperature, top_p=ask.top_p, top_k=ask.top_k, grammar=grammar)
    (generation,) = plane.generate_many(name, [GenerateRequest(prompt, ask.max_tokens, sampling, ask.stops)])
    reader = CallReader(family, parallel=ask.choice.parallel and family.parallel) if ask.calling else None
    ident = "msg_" + secrets.token_hex(12)
    if ask.stream:
        events = _stream(generation, _Blocks(reader), ident, name, len(prompt))
        return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    chunks = await collect_one(request, generation)
    if chunks is None:  # the client went away; its slot is free again
        return Response(status_code=499)
    last = chunks[-1]
    if last.error:
        return anthropic_error(500, last.error)
    blocks = _Blocks(reader)
    for chunk in chunks:
        blocks.feed(chunk.text)
    blocks.finish()
    usage = _usage(last.usage, len(prompt))
    answer = AnthropicMessage(ident, "message", "assistant", blocks.content(), name,
                              _stop_reason(last, blocks), last.stop_sequence, usage)  # fmt: skip
    return JSONResponse(answer.to_dict())


def _usage(usage: Any, prompt: int) -> AnthropicUsage:
    if usage is None:
        return AnthropicUsage(prompt, 0, 0)
    return AnthropicUsage(usage.prompt_tokens - usage.cached_tokens, usage.completion_tokens, usage.cached_tokens)


def _stop_reason(last: Any, blocks: _Blocks) -> StopReason:
    if last.finish_reason == "length":
        return "max_tokens"
    if blocks.calls:
        return "tool_use"
    return "stop_sequence" if last.stop_sequence is not None else "end_turn"


# -- content blocks -----------------------------------------------------------------------------------


@dataclass
class _Block:
    kind: str
    text: str = ""
    id: str = ""
    name: str = ""


@dataclass
class _Blocks:
    """The answer's content blocks as they are written: each step is a start, a delta or a stop of a block,
    the same steps for a whole answer and a streamed one. Text that is only white space (before or between
    calls) opens no block."""

    reader: CallReader | None
    blocks: list[_Block] = field(default_factory=list)
    open: bool = False
    pending: str = ""
    """White space not yet given to a text block."""
    calls: int = 0

    def feed(self, text: str) -> list[tuple[str, int, Any]]:
        if self.reader is None:
            return self._text(text)
        return self._events(self.reader.feed(text))

    def finish(self) -> list[tuple[str, int, Any]]:
        steps = self._events(self.reader.finish()) if self.reader is not None else []
        return steps + self._close()

    def _events(self, events: Sequence[Any]) -> list[tuple[str, int, Any]]:
        steps = []
        for event in events:
            if isinstance(event, Content):
                steps += self._text(event.text)
            elif isinstance(event, CallStart):
                steps += self._close()
                self.pending = ""
                self.calls += 1
                self.blocks.append(_Block("tool_use", id="toolu_" + secrets.token_hex(12), name=event.name))
                self.open = True
                steps.append(("start", len(self.blocks) - 1, None))
            elif isinstance(event, CallArguments) and self.open and self.blocks[-1].kind == "tool_use":
                self.blocks[-1].text += event.text
                steps.append(("json", len(self.blocks) - 1, event.text))
        return steps

    def _text(self, text: str) -> list[tuple[str, int, Any]]:
        steps = []
        if self.open and self.blocks[-1].kind == "tool_use":
            steps += self._close()
        if not self.open:
            self.pending += text
            if not self.pending.strip():
                return steps
            text, self.pending = self.pending, ""
            self.blocks.append(_Block("text"))
            self.open = True
            steps.append(("start", len(self.blocks) - 1, None))
        if text:
            self.blocks[-1].text += text
            steps.append(("text", len(self.blocks) - 1, text))
        return steps

    def _close(self) -> list[tuple[str, int, Any]]:
        if not self.open:
            return []
        self.open = False
        return [("stop", len(self.blocks) - 1, None)]

    def wire(self, index: int, *, whole: bool) -> ContentBlock:
        block = self.blocks[index]
        if block.kind == "text":
            return ContentBlock("text", block.text if whole else "")
        arguments = arguments_object(block.text) if whole else {}
        return ContentBlock("tool_use", id=block.id, name=block.name, input=arguments)

    def content(self) -> tuple[ContentBlock, ...]:
        return tuple(self.wire(i, whole=True) for i in range(len(self.blocks)))


# -- streaming ----------------------------------------------------------------------------------------


def _event(name: str, body: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + dumps({"type": name, **body}) + b"\n\n"


async def _stream(generation: Any, blocks: _Blocks, ident: str, model: str, prompt: int) -> AsyncIterator[bytes]:
    """Anthropic's events: message_start, a ping, each block's start, deltas and stop, message_delta (the
    stop reason and the final token counts), message_stop; an error after the start is an error event."""
    start = AnthropicMessage(ident, "message", "assistant", (), model, "end_turn", None, AnthropicUsage(prompt, 0, 0))
    head = start.to_dict()
    head["stop_reason"] = None  # not known yet
    yield _event("message_start", {"message": head})
    yield _event("ping", {})
    try:
        async for chunk in generation:
            if chunk.error:
                yield _event("error", {"error": AnthropicErrorDetail("api_error", chunk.error).to_dict()})
                return
            steps = blocks.feed(chunk.text)
            if chunk.finish_reason is not None:
                steps += blocks.finish()
            for step in steps:
                yield _step(blocks, step)
            if chunk.finish_reason is not None:
                usage = _usage(chunk.usage, prompt).to_dict()
                delta = {"stop_reason": _stop_reason(chunk, blocks), "stop_sequence": chunk.stop_sequence}
                yield _event("message_delta", {"delta": delta, "usage": usage})
                yield _event("message_stop", {})
                return
    finally:
        generation.cancel()


def _step(blocks: _Blocks, step: tuple[str, int, Any]) -> bytes:
    kind, index, value = step
    if kind == "start":
        block = blocks.wire(index, whole=False).to_dict()
        return _event("content_block_start", {"index": index, "content_block": block})
    if kind == "text":
        return _event("content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": value}})
    if kind == "json":
        delta = {"type": "input_json_delta", "partial_json": value}
        return _event("content_block_delta", {"index": index, "delta": delta})
    return _event("content_block_stop", {"index": index})


def routes() -> list[Route]:
    return [
        Route("/v1/messages", messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
    ]
