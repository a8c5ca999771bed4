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
    "RequestMessage",
    "StreamOptions",
    "ChatCompletionRequest",
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

Finish = Literal["stop", "length", "error"]
Role = Literal["system", "user", "assistant", "tool", "developer"]


# -- requests -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextPart(Wire):
    """A part of a message's content: lanai's language models read text parts only."""

    type: Literal["text"] = doc("Always text.")
    text: str = doc("The text.")


@dataclass(frozen=True)
class RequestMessage(Wire):
    """One message of the conversation."""

    role: Role = doc("Who said it.")
    content: str | list[TextPart] | None = doc(
        "The text, or a list of text parts (null: empty).", default=None, omit_none=True
    )


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
    seed: int | None = doc("Same seed, same prompt, same settings: same answer.", default=None, omit_none=True)
    n: int = doc("Choices to generate: lanai gives one.", default=1, omit_none=True, minimum=1, maximum=1)
    stream: bool = doc("Answer as server-sent events, ending with data: [DONE].", default=False, omit_none=True)
    stream_options: StreamOptions | None = doc("Options of a streamed answer.", default=None, omit_none=True)


@dataclass(frozen=True, kw_only=True)
class ChatCompletionRequest(Sampling):
    """A conversation to answer."""

    messages: list[RequestMessage] = doc("The conversation so far.", minItems=1)


@dataclass(frozen=True, kw_only=True)
class CompletionRequest(Sampling):
    """A text to continue."""

    prompt: str | list[str] = doc("The text to continue (a list may hold one text).")


@dataclass(frozen=True, kw_only=True)
class EmbeddingRequest(Wire):
    """Texts to embed."""

    model: str = doc("A model added with --task embed.")
    input: str | list[str] = doc("A text, or a non-empty list of texts.")
    encoding_format: Literal["float", "base64"] = doc(
        "base64: each vector as its little-endian float32 bytes.", default="float", omit_none=True
    )


# -- answers ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelCard(Wire):
    """A loaded model."""

    id: str = doc("The model's name: what requests put in 'model'.")
    object: Literal["model"] = doc("Always model.")
    created: int = doc("When it was loaded (Unix seconds).")
    owned_by: str = doc("Always lanai.")
    task: str = doc("lanai's task for the model: classify, chat, completion, embed, …")


@dataclass(frozen=True)
class ModelList(Wire):
    """The loaded models."""

    object: Literal["list"] = doc("Always list.")
    data: tuple[ModelCard, ...] = doc("One card per loaded model.")


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
    content: str = doc("The answer.")


@dataclass(frozen=True)
class ChatChoice(Wire):
    """The one answer lanai gives."""

    index: int = doc("Always 0.")
    message: ChatMessage = doc("The answer.")
    finish_reason: Finish | None = doc(
        "stop: the model ended or a stop string came; length: max_tokens or the context."
    )


@dataclass(frozen=True)
class ChatCompletion(Wire):
    """A whole answer to a conversation. Streamed, each server-sent event is a chat.completion.chunk whose
    choice carries a delta ({role?, content?}) instead of a message; the stream ends with data: [DONE]."""

    id: str = doc("chatcmpl-…, the same in every chunk of a stream.")
    object: Literal["chat.completion"] = doc("Always chat.completion.")
    created: int = doc("Unix seconds.")
    model: str = doc("The model that answered.")
    choices: tuple[ChatChoice, ...] = doc("One choice.")
    usage: Usage = doc("Tokens read and written.")


@dataclass(frozen=True)
class CompletionChoice(Wire):
    """The one continuation lanai gives."""

    index: int = doc("Always 0.")
    text: str = doc("The continuation.")
    logprobs: dict[str, Any] | None = doc("Always null (lanai returns no log probabilities).")
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
    choices: tuple[CompletionChoice, ...] = doc("One choice.")
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
