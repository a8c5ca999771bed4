"""The Anthropic Messages API's bodies, as wire values: what the HTTP door sends for whole (not streamed)
answers, token counts and errors, and what the OpenAPI document publishes.

Shapes follow Anthropic's published Messages API, so the official ``anthropic`` clients read them
unchanged. Requests are parsed in the HTTP door (``lanai.http.anthropic``), where each refusal names the
field at fault; the request values here describe what that parser reads. An optional request field that
must not be null has a default and ``omit_none``: left out of the schema's ``required``, and not nullable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from lanai.protocol.wire import Wire, doc

__all__ = [
    "TextBlock",
    "ToolUseBlock",
    "ToolResultBlock",
    "InputMessage",
    "ToolDefinition",
    "ToolChoiceSpec",
    "MessagesRequest",
    "CountTokensRequest",
    "TokenCount",
    "ContentBlock",
    "AnthropicUsage",
    "AnthropicMessage",
    "AnthropicErrorDetail",
    "AnthropicError",
    "ERROR_TYPES",
]

StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use"]
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}
"""Anthropic's error type for each status lanai answers with (anything else: api_error). lanai keeps its
own statuses: a full queue or a server starting is 503 with Retry-After (Anthropic's own is 529)."""


# -- requests -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextBlock(Wire):
    """Text."""

    type: Literal["text"] = doc("Always text.")
    text: str = doc("The text.")


@dataclass(frozen=True)
class ToolUseBlock(Wire):
    """An assistant's earlier call of a tool."""

    type: Literal["tool_use"] = doc("Always tool_use.")
    id: str = doc("The call's id: a tool_result block answers it with tool_use_id.")
    name: str = doc("The tool's name.")
    input: dict[str, Any] = doc("Its arguments.")


@dataclass(frozen=True)
class ToolResultBlock(Wire):
    """A user turn's answer to a tool call."""

    type: Literal["tool_result"] = doc("Always tool_result.")
    tool_use_id: str = doc("The call it answers.")
    content: str | list[TextBlock] | None = doc("The result: text, or text blocks.", default=None, omit_none=True)
    is_error: bool = doc("The call failed; the content says how.", default=False, omit_none=True)


@dataclass(frozen=True)
class InputMessage(Wire):
    """One turn of the conversation."""

    role: Literal["user", "assistant"] = doc("Who said it.")
    content: str | list[TextBlock | ToolUseBlock | ToolResultBlock] = doc(
        "The text, or blocks: text, tool_use (assistant) and tool_result (user). Images, documents and "
        "thinking blocks are refused: lanai's language models read text."
    )


@dataclass(frozen=True)
class ToolDefinition(Wire):
    """A tool the model may call (client tools only: Anthropic's server tools are refused)."""

    name: str = doc("Letters, digits, _ and -, at most 64.", pattern="^[A-Za-z0-9_-]{1,64}$")
    input_schema: dict[str, Any] = doc(
        "Its input, as a JSON Schema object. With tool_choice any or tool, the call's input is decoded to "
        "match it (the same keywords as OpenAI's response_format schemas)."
    )
    description: str | None = doc("What it does: the model reads this.", default=None, omit_none=True)


@dataclass(frozen=True)
class ToolChoiceSpec(Wire):
    """Whether and which tool to call."""

    type: Literal["auto", "any", "tool", "none"] = doc(
        "auto: the model decides; any: some tool must be called; tool: this one; none: no calls."
    )
    name: str | None = doc("With type tool: the tool to call.", default=None, omit_none=True)
    disable_parallel_tool_use: bool = doc("At most one call.", default=False, omit_none=True)


@dataclass(frozen=True, kw_only=True)
class CountTokensRequest(Wire):
    """A conversation to count the prompt tokens of."""

    model: str = doc("A loaded language model (GET /v1/models lists them).")
    messages: list[InputMessage] = doc("The conversation so far: user and assistant turns.", minItems=1)
    system: str | list[TextBlock] | None = doc("The system prompt.", default=None, omit_none=True)
    tools: list[ToolDefinition] | None = doc("Tools the model may call.", default=None, omit_none=True)
    tool_choice: ToolChoiceSpec | None = doc("Whether and which tool to call.", default=None, omit_none=True)


@dataclass(frozen=True, kw_only=True)
class MessagesRequest(CountTokensRequest):
    """A conversation to answer."""

    max_tokens: int = doc("Tokens to generate at most.", minimum=1)
    temperature: float | None = doc(
        "0: always the likeliest token (default 1).", default=None, omit_none=True, minimum=0, maximum=1
    )
    top_p: float | None = doc("Nucleus sampling.", default=None, omit_none=True, minimum=0, maximum=1)
    top_k: int | None = doc("Draw from the k likeliest tokens only.", default=None, omit_none=True, minimum=0)
    stop_sequences: list[str] | None = doc(
        "Text that ends the answer (up to 4 non-empty strings); the answer says which one did.",
        default=None, omit_none=True,
    )  # fmt: skip
    stream: bool = doc("Answer as server-sent events (message_start … message_stop).", default=False,
                       omit_none=True)  # fmt: skip
    metadata: dict[str, Any] | None = doc("Accepted and not used.", default=None, omit_none=True)


# -- answers ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenCount(Wire):
    """The prompt's size."""

    input_tokens: int = doc("Tokens of the prompt: system prompt, tools and messages under the chat template.")


@dataclass(frozen=True)
class ContentBlock(Wire):
    """A block of the answer: text, or a call of one of the request's tools."""

    type: Literal["text", "tool_use"] = doc("text or tool_use.")
    text: str | None = doc("A text block: the text.", default=None, omit_none=True)
    id: str | None = doc("A tool_use block: the call's id (toolu_…).", default=None, omit_none=True)
    name: str | None = doc("A tool_use block: the tool called.", default=None, omit_none=True)
    input: dict[str, Any] | None = doc("A tool_use block: its arguments.", default=None, omit_none=True)


@dataclass(frozen=True)
class AnthropicUsage(Wire):
    """Tokens read and written. The prompt's tokens are input_tokens and cache_read_input_tokens together."""

    input_tokens: int = doc("Prompt tokens read for this request.")
    output_tokens: int = doc("Tokens generated.")
    cache_read_input_tokens: int = doc("Prompt tokens found in the model's cache, not read again.")


@dataclass(frozen=True)
class AnthropicMessage(Wire):
    """The assistant's answer."""

    id: str = doc("msg_…")
    type: Literal["message"] = doc("Always message.")
    role: Literal["assistant"] = doc("Always assistant.")
    content: tuple[ContentBlock, ...] = doc("Text and tool_use blocks, in the order the model wrote them.")
    model: str = doc("The model that answered.")
    stop_reason: StopReason = doc(
        "end_turn: the model ended; max_tokens: the limit (or the context) was reached; stop_sequence: one "
        "of stop_sequences came; tool_use: the answer calls tools."
    )
    stop_sequence: str | None = doc("The stop sequence that ended the answer, if one did.")
    usage: AnthropicUsage = doc("Tokens read and written.")


@dataclass(frozen=True)
class AnthropicErrorDetail(Wire):
    """What went wrong, and usually a 'Hint: …' saying what to do."""

    type: str = doc(
        "invalid_request_error, authentication_error, permission_error, not_found_error, request_too_large, "
        "rate_limit_error, overloaded_error or api_error."
    )
    message: str = doc("What went wrong.")


@dataclass(frozen=True)
class AnthropicError(Wire):
    """Anthropic's error shape."""

    type: Literal["error"] = doc("Always error.")
    error: AnthropicErrorDetail = doc("The error.")
