"""The OpenAI-compatible API's answers, as wire values: what the HTTP door sends for whole (not streamed)
answers and the model list, what the client reads, and what the OpenAPI document publishes.

Shapes follow OpenAI's (PROTOCOLS.md §2), so the official ``openai`` clients read them unchanged.
Requests are parsed in the HTTP door, where each refusal names OpenAI's ``param``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lanai.protocol.wire import Wire, doc

__all__ = [
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
    logprobs: None = doc("Always null.")
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
    embedding: list[float] | str = doc("The vector; with encoding_format base64, its little-endian float32 bytes.")


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
