"""The OpenAI-compatible API's bodies, as wire values: what the HTTP door sends for whole (not streamed)
answers and the model list, what the client reads, and what the OpenAPI document publishes.

Shapes follow OpenAI's (PROTOCOLS.md §2), so the official ``openai`` clients read them unchanged.
Requests are parsed in the HTTP door, where each refusal names OpenAI's ``param``; the request values
here describe what that parser reads, for the OpenAPI document (a unit test holds the two together).
An optional request field that must not be null has a default and ``omit_none``: left out of the
schema's ``required``, and not nullable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from lanai.protocol.wire import Wire, doc

__all__ = [
    "TextPart",
    "ToolCall",
    "ToolCallFunction",
    "ToolSpec",
    "FunctionSpec",
    "NamedToolChoice",
    "NamedFunction",
    "RequestMessage",
    "StreamOptions",
    "ChatCompletionRequest",
    "ResponseFormat",
    "JsonSchemaFormat",
    "TopLogprob",
    "TokenLogprob",
    "ChatLogprobs",
    "CompletionLogprobs",
    "CompletionRequest",
    "EmbeddingRequest",
    "ModelCard",
    "ModelList",
    "Usage",
    "ChatMessage",
    "ChatChoice",
    "ChatCompletion",
    "CompletionChoice",
    "Completion",
    "Embedding",
    "EmbeddingUsage",
    "EmbeddingList",
]

Finish = Literal["stop", "length", "tool_calls", "error"]
Role = Literal["system", "user", "assistant", "tool", "developer"]


# -- requests -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextPart(Wire):
    """A part of a message's content: lanai's language models read text parts only."""

    type: Literal["text"] = doc("Always text.")
    text: str = doc("The text.")


@dataclass(frozen=True)
class ToolCallFunction(Wire):
    """The function a call names, and its arguments."""

    name: str = doc("The function's name.")
    arguments: str = doc("Its arguments: a JSON object, as text.")


@dataclass(frozen=True)
class ToolCall(Wire):
    """A call of one of the request's tools."""

    id: str = doc("The call's id: a tool message answers it with tool_call_id.")
    type: Literal["function"] = doc("Always function.")
    function: ToolCallFunction = doc("What is called, with what.")


@dataclass(frozen=True)
class RequestMessage(Wire):
    """One message of the conversation."""

    role: Role = doc("Who said it.")
    content: str | list[TextPart] | None = doc(
        "The text, or a list of text parts (null: empty).", default=None, omit_none=True
    )
    tool_calls: list[ToolCall] | None = doc("An assistant's earlier tool calls.", default=None, omit_none=True)
    tool_call_id: str | None = doc("A tool message: the call it answers.", default=None, omit_none=True)
    name: str | None = doc("A tool message: the function's name.", default=None, omit_none=True)


@dataclass(frozen=True)
class FunctionSpec(Wire):
    """A function the model may call."""

    name: str = doc("Letters, digits, _ and -, at most 64.", pattern="^[A-Za-z0-9_-]{1,64}$")
    description: str | None = doc("What it does: the model reads this.", default=None, omit_none=True)
    parameters: dict[str, Any] | None = doc(
        "Its arguments, as a JSON Schema object. With tool_choice required or named, the call's arguments "
        "are decoded to match it (the same keywords as response_format's schemas).",
        default=None, omit_none=True,
    )  # fmt: skip
    strict: bool | None = doc("Accepted; a forced call always matches its schema.", default=None, omit_none=True)


@dataclass(frozen=True)
class ToolSpec(Wire):
    """A tool: a function."""

    type: Literal["function"] = doc("Always function.")
    function: FunctionSpec = doc("The function.")


@dataclass(frozen=True)
class NamedFunction(Wire):
    """The function that must be called."""

    name: str = doc("One of the tools' names.")


@dataclass(frozen=True)
class NamedToolChoice(Wire):
    """Call this function."""

    type: Literal["function"] = doc("Always function.")
    function: NamedFunction = doc("Which.")


@dataclass(frozen=True)
class StreamOptions(Wire):
    """Options of a streamed answer."""

    include_usage: bool = doc("A last event with the token counts.", default=False, omit_none=True)


@dataclass(frozen=True, kw_only=True)
class Sampling(Wire):
    """How to generate: the settings that chat and text completions share."""

    model: str = doc("A loaded language model (GET /v1/models lists them).")
    max_tokens: int | None = doc(
        "Tokens to generate at most (default: until the model stops or the context is full).",
        default=None, omit_none=True, minimum=1,
    )  # fmt: skip
    max_completion_tokens: int | None = doc("Same as max_tokens; wins over it.", default=None, omit_none=True,
                                            minimum=1)  # fmt: skip
    temperature: float | None = doc(
        "0: always the likeliest token (default 1).", default=None, omit_none=True, minimum=0, maximum=2
    )
    top_p: float | None = doc("Nucleus sampling (default 1).", default=None, omit_none=True, minimum=0, maximum=1)
    stop: str | list[str] | None = doc(
        "Text that ends the answer: a string, or up to 4 non-empty strings.", default=None, omit_none=True
    )
    seed: int | None = doc(
        "Same seed, same prompt, same settings: same answer (with n > 1, answer i draws with seed + i).",
        default=None, omit_none=True,
    )  # fmt: skip
    n: int = doc("Answers to generate; the prompt is read once for all of them.", default=1, omit_none=True,
                 minimum=1, maximum=16)  # fmt: skip
    top_k: int | None = doc("Draw from the k likeliest tokens only (llama.cpp's extension; 0: off).", default=None,
                            omit_none=True, minimum=0)  # fmt: skip
    min_p: float | None = doc("Drop tokens less likely than min_p × the likeliest's (llama.cpp's extension).",
                              default=None, omit_none=True, minimum=0, maximum=1)  # fmt: skip
    typical_p: float | None = doc("Locally typical sampling (llama.cpp's extension; 1: off).", default=None,
                                  omit_none=True, minimum=0, maximum=1)  # fmt: skip
    mirostat: int | None = doc(
        "Mirostat sampling instead of top_k, typical_p, top_p and min_p: 1 or 2 (Mirostat 2.0); 0: off "
        "(llama.cpp's extension).",
        default=None, omit_none=True, minimum=0, maximum=2,
    )  # fmt: skip
    mirostat_tau: float | None = doc("Mirostat's target surprise (default 5).", default=None, omit_none=True,
                                     minimum=0, maximum=100)  # fmt: skip
    mirostat_eta: float | None = doc("Mirostat's learning rate (default 0.1).", default=None, omit_none=True,
                                     minimum=0, maximum=1)  # fmt: skip
    presence_penalty: float | None = doc(
        "Subtracted once from every token already generated.", default=None, omit_none=True, minimum=-2, maximum=2
    )
    frequency_penalty: float | None = doc(
        "Subtracted per time a token was already generated.", default=None, omit_none=True, minimum=-2, maximum=2
    )
    repeat_penalty: float | None = doc(
        "Divides the logits of the last 64 tokens generated (llama.cpp's extension; 1: off).",
        default=None, omit_none=True, minimum=0, maximum=10,
    )  # fmt: skip
    logit_bias: dict[str, float] | None = doc(
        "Token id (the model's own tokenizer) → added to its logit, -100 to 100; -100 bans the token.",
        default=None, omit_none=True,
    )  # fmt: skip
    stream: bool = doc("Answer as server-sent events, ending with data: [DONE].", default=False, omit_none=True)
    stream_options: StreamOptions | None = doc("Options of a streamed answer.", default=None, omit_none=True)
    min_tokens: int | None = doc(
        "The model's end tokens are banned until this many tokens are generated (vLLM's and llama.cpp's "
        "extension); at most max_tokens.",
        default=None, omit_none=True, minimum=0,
    )  # fmt: skip
    ignore_eos: bool | None = doc(
        "The model's end tokens are banned: the answer ends at max_tokens, a stop string or a full context "
        "(vLLM's and llama.cpp's extension).",
        default=None, omit_none=True,
    )  # fmt: skip
    keep_alive: str | int | None = doc(
        'How long the model stays loaded after this request: "10m", 0 (unload after it), -1 (stay) '
        "(Ollama's extension).",
        default=None, omit_none=True,
    )  # fmt: skip
    user: str | None = doc("Accepted, not used: who asked.", default=None, omit_none=True)
    metadata: dict[str, str] | None = doc("Accepted, not used.", default=None, omit_none=True)
    prompt_cache_key: str | None = doc("Accepted, not used: lanai reuses cached prompts on its own.",
                                       default=None, omit_none=True)  # fmt: skip
    safety_identifier: str | None = doc("Accepted, not used.", default=None, omit_none=True)


@dataclass(frozen=True)
class JsonSchemaFormat(Wire):
    """The schema every answer must match."""

    name: str = doc("A name for the schema.", default="answer", omit_none=True)
    schema: dict[str, Any] | None = doc(
        "The JSON Schema. Keywords that cannot be enforced while decoding (numeric bounds, oneOf, allOf, "
        "formats other than date, time, date-time and uuid) are refused by name.",
        default=None, omit_none=True,
    )  # fmt: skip
    strict: bool | None = doc("Accepted: lanai always enforces the schema.", default=None, omit_none=True)
    description: str | None = doc("What the answer is for.", default=None, omit_none=True)


@dataclass(frozen=True)
class ResponseFormat(Wire):
    """What the answer must be: free text, any JSON object, or JSON matching a schema (decoding is
    constrained by a grammar, so the answer parses unless it is cut short by max_tokens)."""

    type: Literal["text", "json_object", "json_schema"] = doc("The kind of answer.")
    json_schema: JsonSchemaFormat | None = doc("With json_schema: the schema.", default=None, omit_none=True)


@dataclass(frozen=True, kw_only=True)
class ChatCompletionRequest(Sampling):
    """A conversation to answer."""

    messages: list[RequestMessage] = doc("The conversation so far.", minItems=1)
    response_format: ResponseFormat | None = doc("Constrain the answer to JSON.", default=None, omit_none=True)
    tools: list[ToolSpec] | None = doc("Functions the model may call.", default=None, omit_none=True)
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = doc(
        "auto (default with tools): the model decides; none: no calls; required: at least one call; or a "
        "named function. required and named calls are decoded under a grammar, so they parse and match the "
        "function's parameters.",
        default=None, omit_none=True,
    )  # fmt: skip
    parallel_tool_calls: bool | None = doc(
        "Several calls in one answer (default true; never for Llama 3's templates).", default=None, omit_none=True
    )
    logprobs: bool | None = doc("Return each token's log probability.", default=None, omit_none=True)
    top_logprobs: int | None = doc("With logprobs: the likeliest alternatives per token.", default=None,
                                   omit_none=True, minimum=0, maximum=20)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class CompletionRequest(Sampling):
    """A text to continue."""

    prompt: str | list[str] = doc("The text to continue (a list may hold one text).")
    logprobs: int | None = doc("Return each token's log probability and this many likeliest alternatives.",
                               default=None, omit_none=True, minimum=0, maximum=20)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class EmbeddingRequest(Wire):
    """Texts to embed."""

    model: str = doc("A model added with --task embed.")
    input: str | list[str] = doc("A text, or a non-empty list of texts.")
    encoding_format: Literal["float", "base64"] = doc(
        "base64: each vector as its little-endian float32 bytes.", default="float", omit_none=True
    )
    dimensions: int | None = doc(
        "Keep each vector's first so many values, scaled back to length 1 (for models trained so).",
        default=None, omit_none=True, minimum=1,
    )  # fmt: skip
    keep_alive: str | int | None = doc(
        "How long the model stays loaded after this request (Ollama's extension).", default=None, omit_none=True
    )
    user: str | None = doc("Accepted, not used: who asked.", default=None, omit_none=True)


# -- answers ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelCard(Wire):
    """A loaded model."""

    id: str = doc("The model's name: what requests put in 'model'.")
    object: Literal["model"] = doc("Always model.")
    created: int = doc("When it was loaded (Unix seconds).")
    owned_by: str = doc("Always lanai.")
    task: str = doc("lanai's task for the model: classify, chat, completion, embed, …")
    status: Literal["loaded", "loading", "available"] = doc(
        "loaded; or, for a model that loads on demand, loading or available (a request loads it).",
        default="loaded", omit_none=True,
    )  # fmt: skip
    expires_at: int | None = doc(
        "A model loaded on demand: when it leaves if nothing asks for it (Unix seconds).", default=None,
        omit_none=True,
    )  # fmt: skip


@dataclass(frozen=True)
class ModelList(Wire):
    """The loaded models, and those that load on demand."""

    object: Literal["list"] = doc("Always list.")
    data: tuple[ModelCard, ...] = doc("One card per model.")


@dataclass(frozen=True)
class CachedTokens(Wire):
    """Where the prompt's tokens came from."""

    cached_tokens: int = doc("Prompt tokens found in the model's cache, not read again.")


@dataclass(frozen=True)
class Usage(Wire):
    """Tokens read and written."""

    prompt_tokens: int = doc("Tokens of the prompt.")
    completion_tokens: int = doc("Tokens generated.")
    total_tokens: int = doc("The two together.")
    prompt_tokens_details: CachedTokens = doc("How much of the prompt was cached.")

    @classmethod
    def of(cls, prompt: int, completion: int, cached: int) -> Usage:
        return cls(prompt, completion, prompt + completion, CachedTokens(cached))


@dataclass(frozen=True)
class ChatMessage(Wire):
    """The assistant's message."""

    role: Literal["assistant"] = doc("Always assistant.")
    content: str | None = doc("The answer (null when the answer is tool calls only).")
    tool_calls: tuple[ToolCall, ...] | None = doc("The tools called, if any.", default=None, omit_none=True)


@dataclass(frozen=True)
class TopLogprob(Wire):
    """A likely token at a position."""

    token: str = doc("The token's text (a piece of a character shows as U+FFFD; see bytes).")
    logprob: float = doc("Its natural-log probability under the model.")
    bytes: tuple[int, ...] = doc("The token's UTF-8 bytes.")


@dataclass(frozen=True)
class TokenLogprob(Wire):
    """A generated token with its log probability and the likeliest alternatives at its position."""

    token: str = doc("The token's text.")
    logprob: float = doc("Its natural-log probability under the model (before sampling settings).")
    bytes: tuple[int, ...] = doc("The token's UTF-8 bytes.")
    top_logprobs: tuple[TopLogprob, ...] = doc("The top_logprobs likeliest tokens there, best first.")


@dataclass(frozen=True)
class ChatLogprobs(Wire):
    """Log probabilities of an answer's tokens."""

    content: tuple[TokenLogprob, ...] = doc("One entry per generated token.")


@dataclass(frozen=True)
class CompletionLogprobs(Wire):
    """Log probabilities of a continuation's tokens (the legacy completions shape)."""

    tokens: tuple[str, ...] = doc("The tokens' texts.")
    token_logprobs: tuple[float, ...] = doc("Each token's natural-log probability.")
    top_logprobs: tuple[dict[str, float], ...] = doc("Per token, the likeliest tokens and theirs.")
    text_offset: tuple[int, ...] = doc("Where each token starts in the text.")


@dataclass(frozen=True)
class ChatChoice(Wire):
    """One answer."""

    index: int = doc("Which of the n answers.")
    message: ChatMessage = doc("The answer.")
    finish_reason: Finish | None = doc(
        "stop: the model ended or a stop string came; length: max_tokens or the context; tool_calls: the "
        "answer calls tools."
    )
    logprobs: ChatLogprobs | None = doc("With logprobs: the tokens' log probabilities; else null.", default=None)


@dataclass(frozen=True)
class ChatCompletion(Wire):
    """A whole answer to a conversation. Streamed, each server-sent event is a chat.completion.chunk whose
    choice carries a delta ({role?, content?}) instead of a message; the stream ends with data: [DONE]."""

    id: str = doc("chatcmpl-…, the same in every chunk of a stream.")
    object: Literal["chat.completion"] = doc("Always chat.completion.")
    created: int = doc("Unix seconds.")
    model: str = doc("The model that answered.")
    choices: tuple[ChatChoice, ...] = doc("One choice per answer asked for (n).")
    usage: Usage = doc("Tokens read and written.")


@dataclass(frozen=True)
class CompletionChoice(Wire):
    """One continuation."""

    index: int = doc("Which of the n continuations.")
    text: str = doc("The continuation.")
    logprobs: CompletionLogprobs | None = doc("With logprobs: the tokens' log probabilities; else null.")
    finish_reason: Finish | None = doc(
        "stop: the model ended or a stop string came; length: max_tokens or the context."
    )


@dataclass(frozen=True)
class Completion(Wire):
    """A whole continuation of a text (streamed: the same object per event, each with a piece of text)."""

    id: str = doc("cmpl-…")
    object: Literal["text_completion"] = doc("Always text_completion.")
    created: int = doc("Unix seconds.")
    model: str = doc("The model that answered.")
    choices: tuple[CompletionChoice, ...] = doc("One choice per continuation asked for (n).")
    usage: Usage = doc("Tokens read and written.")


@dataclass(frozen=True)
class Embedding(Wire):
    """One input's vector."""

    object: Literal["embedding"] = doc("Always embedding.")
    index: int = doc("The input's position.")
    embedding: Sequence[float] | str = doc("The vector; with encoding_format base64, its little-endian float32 bytes.")


@dataclass(frozen=True)
class EmbeddingUsage(Wire):
    """Tokens read."""

    prompt_tokens: int = doc("Tokens of every input.")
    total_tokens: int = doc("The same.")


@dataclass(frozen=True)
class EmbeddingList(Wire):
    """One vector per input, in order."""

    object: Literal["list"] = doc("Always list.")
    data: tuple[Embedding, ...] = doc("The vectors.")
    model: str = doc("The model that embedded them.")
    usage: EmbeddingUsage = doc("Tokens read.")
