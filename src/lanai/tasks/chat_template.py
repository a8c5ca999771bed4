"""Chat messages → one prompt, with the chat template the model's GGUF file carries (Jinja2, sandboxed)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from lanai.errors import BadInput

__all__ = ["render_chat", "message_text", "FALLBACK_TEMPLATE", "ROLES"]

ROLES = ("system", "user", "assistant", "tool", "developer")

# ChatML, for models whose file has no template of their own.
FALLBACK_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def message_text(content: Any, index: int) -> str:
    """A message's content as text: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, Mapping) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
                raise BadInput(
                    f"messages[{index}].content has a part of type {kind!r}; this model reads text only.",
                    hint='send {"type": "text", "text": "..."} parts, or a plain string.',
                )
            texts.append(part["text"])
        return "".join(texts)
    raise BadInput(f"messages[{index}].content must be a string or a list of text parts.")


def render_chat(
    template: str | None, messages: Sequence[Mapping[str, Any]], *, bos: str = "", eos: str = "",
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> str:  # fmt: skip
    """The prompt for ``messages``, ending where the assistant's answer begins. ``tools`` (OpenAI's shape)
    is handed to templates that render function descriptions themselves."""
    compiled = _compile(template or FALLBACK_TEMPLATE)
    extra = {"tools": list(tools)} if tools else {}

    def render(turns: Sequence[Mapping[str, Any]]) -> str:
        try:
            return str(compiled.render(
                messages=list(turns), add_generation_prompt=True, bos_token=bos, eos_token=eos,
                raise_exception=_raise, strftime_now=lambda fmt: datetime.now().strftime(fmt), **extra,
            ))  # fmt: skip
        except BadInput:
            raise
        except Exception as exc:
            raise BadInput(f"the model's chat template cannot render these messages: {exc}") from exc

    try:
        return render(messages)
    except BadInput:
        merged = _system_into_user(messages)
        if merged is None:
            raise
        return render(merged)  # e.g. Gemma's templates have no system turn: it opens the first user turn


def _system_into_user(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]] | None:
    """The conversation with its system message put at the start of the first user message, or None."""
    if len(messages) < 2 or messages[0].get("role") != "system" or messages[1].get("role") != "user":
        return None
    first = dict(messages[1])
    first["content"] = f"{messages[0].get('content') or ''}\n\n{first.get('content') or ''}"
    return [first, *(dict(m) for m in messages[2:])]


@lru_cache(maxsize=8)
def _compile(template: str) -> Any:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = _tojson  # as the templates' authors render them (Jinja's escapes HTML)
    return env.from_string(template)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None, separators: Any = None,
            sort_keys: bool = False) -> str:  # fmt: skip
    """Plain JSON, the way Hugging Face's chat-template renderer writes it: Jinja's own ``tojson`` escapes
    ``<``, ``>``, ``&`` and ``'`` for HTML, which would put ``\\u003c`` into a prompt."""
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _raise(message: str) -> None:
    raise BadInput(f"the model's chat template refused the messages: {message}")
