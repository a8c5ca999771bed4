"""Tool calls: how a chat model is told about functions, how its calls are read back out of its text (whole
or as it streams), and the grammar that forces a well-formed call when the client requires one.

Each model family writes calls its own way, and its chat template says which:

- **hermes** (Qwen2.5, Qwen3, Hermes, and any template that mentions ``<tool_call>``): one
  ``<tool_call>{"name": …, "arguments": {…}}</tool_call>`` per call, several in a row for parallel calls;
- **llama3** (Llama 3.1, 3.2, 3.3: templates with ``Environment: ipython``): the whole answer is one
  ``{"name": …, "parameters": {…}}`` object, optionally after ``<|python_tag|>``;
- **mistral** (Mistral Nemo, Small, Ministral: templates with ``[TOOL_CALLS]``): a JSON list of
  ``{"name": …, "arguments": {…}}`` objects after ``[TOOL_CALLS]``;
- **generic**: a template that knows nothing of tools (SmolLM2, SmolLM3's GGUF template, Gemma, Phi-3.5).
  lanai describes the functions in the system message itself and asks for the hermes form; earlier calls
  and their results are written into the conversation as text the template can render.

Reading is one incremental parser for all of them (:class:`CallReader`): text before the first call is
content, a call's name is known as soon as it is complete, and its arguments are passed on piece by piece
as they are generated, the way OpenAI streams them.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from lanai.errors import BadInput

__all__ = [
    "Tool",
    "ToolChoice",
    "Family",
    "family_of",
    "CallReader",
    "Content",
    "CallStart",
    "CallArguments",
    "forced_grammar",
    "prepare_messages",
    "arguments_object",
]

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_NAME_VALUE = re.compile(r'"name"\s*:\s*("(?:[^"\\]|\\.)*")$')
_ARGUMENTS_KEY = re.compile(r'"(?:arguments|parameters)"\s*:\s*$')


@dataclass(frozen=True)
class Tool:
    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def openai(self) -> dict[str, Any]:
        """The tool as OpenAI writes it (what templates render with ``tojson``)."""
        function = {"name": self.name, "description": self.description, "parameters": dict(self.parameters)}
        return {"type": "function", "function": function}


@dataclass(frozen=True)
class ToolChoice:
    mode: Literal["auto", "none", "required", "function"] = "auto"
    name: str | None = None
    parallel: bool = True


# -- families -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    name: Literal["hermes", "llama3", "mistral", "generic"]
    native: bool
    """The template renders tools and calls itself."""
    arguments_key: str = "arguments"

    @property
    def parallel(self) -> bool:
        """Whether one answer may hold several calls (Llama 3's templates refuse them)."""
        return self.name != "llama3"


HERMES = Family("hermes", True)
LLAMA3 = Family("llama3", True, "parameters")
MISTRAL = Family("mistral", True)
GENERIC = Family("generic", False)


def family_of(template: str | None) -> Family:
    """The tool-call family a chat template belongs to (see the module's notes)."""
    text = template or ""
    if "[TOOL_CALLS]" in text:
        return MISTRAL
    if "<tool_call>" in text:
        return HERMES
    if "Environment: ipython" in text or "<|python_tag|>" in text:
        return LLAMA3
    return GENERIC


# -- the conversation ---------------------------------------------------------------------------------


def prepare_messages(
    family: Family, messages: Sequence[Mapping[str, Any]], tools: Sequence[Tool]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """The messages and the ``tools`` value to render the template with. A native family gets OpenAI's
    shapes (call arguments as objects, as templates expect); the generic one gets plain text turns."""
    if family.native:
        out = [_native_message(family, m) for m in messages]
        return out, ([t.openai() for t in tools] if tools else None)
    out = [_generic_message(m) for m in messages]
    merged: list[dict[str, Any]] = []
    for message in out:  # tool results become user turns; templates want roles to alternate
        if merged and message["role"] == "user" and merged[-1]["role"] == "user" and message.get("_result"):
            merged[-1] = {"role": "user", "content": merged[-1]["content"] + "\n" + message["content"], "_result": True}
        else:
            merged.append(message)
    for message in merged:
        message.pop("_result", None)
    if tools:
        instructions = _instructions(tools)
        if merged and merged[0]["role"] == "system":
            merged[0] = {"role": "system", "content": merged[0]["content"] + "\n\n" + instructions}
        else:
            merged.insert(0, {"role": "system", "content": instructions})
    return merged, None


def _native_message(family: Family, message: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message["role"], "content": message.get("content")}
    if message.get("tool_calls"):
        calls = []
        for call in message["tool_calls"]:
            function = call["function"]
            call_id = _mistral_id(call.get("id", "")) if family is MISTRAL else call.get("id", "")
            function = {"name": function["name"], "arguments": _arguments(function["arguments"])}
            calls.append({"id": call_id, "type": "function", "function": function})
        out["tool_calls"] = calls
    if message["role"] == "tool":
        call_id = message.get("tool_call_id", "")
        out["tool_call_id"] = _mistral_id(call_id) if family is MISTRAL else call_id
        if message.get("name"):
            out["name"] = message["name"]
    if out["content"] is None:
        out["content"] = ""
    return out


def _generic_message(message: Mapping[str, Any]) -> dict[str, Any]:
    content = message.get("content") or ""
    if message["role"] == "tool":
        return {"role": "user", "content": f"<tool_response>\n{content}\n</tool_response>", "_result": True}
    if message.get("tool_calls"):
        calls = "\n".join(
            "<tool_call>" + json.dumps(_plain_call(call), ensure_ascii=False) + "</tool_call>"
            for call in message["tool_calls"]
        )
        return {"role": "assistant", "content": (content + "\n" if content else "") + calls}
    return {"role": message["role"], "content": content}


def _plain_call(call: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": call["function"]["name"], "arguments": _arguments(call["function"]["arguments"])}


def _arguments(arguments: Any) -> Any:
    """A call's arguments as an object: OpenAI sends them as a JSON string."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments


def arguments_object(text: str) -> dict[str, Any]:
    """The arguments a model wrote for a call, as an object ({} when its JSON was cut short or is not an
    object): the form the Anthropic and Ollama APIs answer with."""
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _mistral_id(call_id: str) -> str:
    """Mistral's templates want call ids of 9 letters and digits: others are mapped to one, the same
    each time, so a call and its result still match."""
    if re.fullmatch(r"[A-Za-z0-9]{9}", call_id or ""):
        return call_id
    digest = hashlib.sha256((call_id or "").encode()).hexdigest()
    return digest[:9]


def _instructions(tools: Sequence[Tool]) -> str:
    described = "\n".join(json.dumps(t.openai()["function"], ensure_ascii=False) for t in tools)
    return (
        "# Tools\n\nYou may call functions to answer. They are described here, one JSON object per line:\n"
        f"<tools>\n{described}\n</tools>\n\nTo call a function, answer with nothing but one line per call:\n"
        '<tool_call>{"name": "<function name>", "arguments": {<the arguments as JSON>}}</tool_call>\n'
        "A function's result comes back as <tool_response>…</tool_response>. If no function helps, answer in words."
    )


def new_call_id(family: Family) -> str:
    return secrets.token_hex(5)[:9] if family is MISTRAL else "call_" + secrets.token_hex(12)


# -- forced calls -------------------------------------------------------------------------------------


def forced_grammar(family: Family, tools: Sequence[Tool], choice: ToolChoice) -> str:
    """The GBNF grammar of an answer that is nothing but calls (at least one; one only unless parallel)
    to the chosen tools, each with arguments matching the function's parameters schema."""
    from llama_cpp.llama_grammar import SchemaConverter

    from lanai.tasks.structured import check_schema, json_strings

    chosen = [t for t in tools if choice.mode != "function" or t.name == choice.name]
    converter = SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    alternatives = []
    for i, tool in enumerate(chosen):
        where = f"tools[{tools.index(tool)}].function.parameters"
        check_schema(tool.parameters, where)
        try:
            schema = converter.resolve_refs(dict(tool.parameters), f"tool{i}")
            arguments = converter.visit(schema, f"tool-{i}-arguments")
        except (ValueError, KeyError, TypeError, AssertionError, RecursionError) as exc:
            raise BadInput(f"{where} cannot be turned into a grammar: {exc}.") from None
        head = _literal(f'{{"name": "{tool.name}", "{family.arguments_key}": ')
        alternatives.append(f'{head} {arguments} "}}"')
    call = converter._add_rule("call-object", " | ".join(f"( {a} )" for a in alternatives))
    several = choice.parallel and family.parallel
    if family is MISTRAL:
        body = f'"[" {call} ( "," " "? {call} )* "]"' if several else f'"[" {call} "]"'
    elif family is LLAMA3:
        body = call
    else:
        one = f'"<tool_call>\\n" {call} "\\n</tool_call>"'
        body = f'{one} ( "\\n" {one} )*' if several else one
    converter._add_rule("root", body)
    return json_strings(str(converter.format_grammar()))


def _literal(text: str) -> str:
    return json.dumps(text)


# -- reading calls out of the text --------------------------------------------------------------------


@dataclass(frozen=True)
class Content:
    text: str


@dataclass(frozen=True)
class CallStart:
    index: int
    id: str
    name: str


@dataclass(frozen=True)
class CallArguments:
    index: int
    text: str


Event = Content | CallStart | CallArguments

_OPENERS = {
    "hermes": ("<tool_call>",),
    "generic": ("<tool_call>",),
    "llama3": ("<|python_tag|>",),
    "mistral": ("[TOOL_CALLS]",),
}
# families whose calls may also stand bare at the very start of the answer (no marker)
_BARE_START = {"llama3": ("{",), "mistral": ("[", "{")}


class CallReader:
    """Turns a model's text, fed piece by piece, into content and tool-call events."""

    def __init__(self, family: Family, *, parallel: bool = True) -> None:
        self.family = family
        self.parallel = parallel
        self.openers = _OPENERS[family.name]
        self.calls = 0
        self._head = ""  # text not yet given out as content (it may begin a call)
        self._in_calls = False
        self._seen_text = False
        self._object: _ObjectScanner | None = None

    def feed(self, text: str) -> list[Event]:
        events: list[Event] = []
        if not self._in_calls:
            self._head += text
            events += self._scan_head(final=False)
            if not self._in_calls:
                return events
            text, self._head = self._head, ""
        events += self._scan_calls(text)
        return events

    def finish(self) -> list[Event]:
        """The answer has ended: what was held back is content, a call cut short is dropped."""
        if not self._in_calls:
            return self._scan_head(final=True)
        return []

    def _scan_head(self, *, final: bool) -> list[Event]:
        head = self._head
        if not self._seen_text:
            stripped = head.lstrip()
            for bare in _BARE_START.get(self.family.name, ()):
                if stripped.startswith(bare):
                    self._head, self._in_calls = stripped, True
                    return []
            if not stripped and not final:
                return []
        for opener in self.openers:
            at = head.find(opener)
            if at >= 0:
                before = head[:at]
                self._head, self._in_calls = head[at + len(opener) :], True
                return [Content(before)] if before.strip() else []
        keep = 0 if final else _partial_suffix(head, self.openers)
        out, self._head = head[: len(head) - keep], head[len(head) - keep :]
        if out:
            self._seen_text = self._seen_text or bool(out.strip())
            return [Content(out)]
        return []

    def _scan_calls(self, text: str) -> list[Event]:
        events: list[Event] = []
        for char in text:
            if self._object is None:
                if char == "{" and (self.parallel or self.calls == 0):
                    self._object = _ObjectScanner(self.family, self.calls)
                else:
                    continue  # separators: spaces, commas, brackets, the markers around calls
            events += self._object.feed(char)
            if self._object.done:
                if self._object.started:
                    self.calls += 1
                self._object = None
        return events


class _ObjectScanner:
    """One call object, read character by character: its name as soon as it is whole, then the pieces of
    its arguments as they come."""

    def __init__(self, family: Family, index: int) -> None:
        self.family, self.index = family, index
        self.text = ""
        self.depth = 0
        self.in_string = False
        self.escaped = False
        self.done = False
        self.started = False
        self.name: str | None = None
        self._arguments_at: int | None = None  # where the arguments' value begins in ``text``
        self._arguments_sent = 0
        self._arguments_done = False
        self._pending: list[Event] = []

    def feed(self, char: str) -> list[Event]:
        depth_before, in_string_before = self.depth, self.in_string
        self.text += char
        if self.in_string:
            if self.escaped:
                self.escaped = False
            elif char == "\\":
                self.escaped = True
            elif char == '"':
                self.in_string = False
        elif char == '"':
            self.in_string = True
        elif char in "{[":
            self.depth += 1
        elif char in "}]":
            self.depth -= 1
        events: list[Event] = []
        if self.name is None and self.depth == 1 and char == '"' and not self.in_string:  # a string just ended
            found = _NAME_VALUE.search(self.text)
            if found:
                self.name = json.loads(found.group(1))
                events.append(CallStart(self.index, new_call_id(self.family), self.name))
                self.started = True
        if (self._arguments_at is None and depth_before == 1 and not in_string_before and not char.isspace()
                and char != ":" and _ARGUMENTS_KEY.search(self.text[:-1])):  # fmt: skip
            self._arguments_at = len(self.text) - 1  # the value begins with this character
        if self._arguments_at is not None and not self._arguments_done:
            value = self.text[self._arguments_at :]
            if value[0] in "{[":
                self._arguments_done = self.depth == 1  # closed: back at the call object's own depth
                events += self._send(value)
            elif value[0] == '"':
                self._arguments_done = len(value) > 1 and not self.in_string
                events += self._send(value)
            elif char in ",}":  # a bare scalar ended
                self._arguments_done = True
                events += self._send(value[:-1].rstrip())
        if self.depth == 0:
            self.done = True
        if not self.started:  # the name is not known yet: hold the arguments back
            self._pending += events
            if self.done and self.name is None and self._pending:
                self._pending = []  # an object with arguments and no name is not a call
            return []
        out, self._pending = self._pending + events, []
        return _in_order(out)

    def _send(self, value: str) -> list[Event]:
        """What of the arguments' text up to now has not been sent."""
        if value.startswith('"'):  # arguments given as a JSON string: sent whole, decoded, once it ends
            if not self._arguments_done:
                return []
            try:
                decoded = json.loads(value)
            except ValueError:
                decoded = value
            return [CallArguments(self.index, decoded if isinstance(decoded, str) else json.dumps(decoded))]
        piece = value[self._arguments_sent :]
        self._arguments_sent = len(value)
        return [CallArguments(self.index, piece)] if piece else []


def _in_order(events: list[Event]) -> list[Event]:
    """A call's start before its arguments, and argument pieces joined."""
    starts = [e for e in events if isinstance(e, CallStart)]
    others = [e for e in events if not isinstance(e, CallStart)]
    return [*starts, *others]


def _partial_suffix(text: str, markers: Sequence[str]) -> int:
    """How many characters at the end of ``text`` could be the start of one of ``markers``."""
    best = 0
    for marker in markers:
        for size in range(min(len(marker) - 1, len(text)), 0, -1):
            if text.endswith(marker[:size]):
                best = max(best, size)
                break
    return best
