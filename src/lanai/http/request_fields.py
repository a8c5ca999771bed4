"""Which fields each language-model route reads, in one table: no field is accepted and silently ignored.

Every field of a request body is one of:

- **read**: the route honours it (its parser checks the value's range and meaning; a ``check`` here
  refuses a wrong type first);
- **metadata**: accepted and not used, because it asks nothing of the answer (``user``, ``metadata``…);
  its type is still checked;
- **refused**: a 400 naming it, with a hint, unless its value asks for what lanai does anyway
  (``store: false``, ``echo: false``, ``service_tier: "auto"``…).

Any other key is refused as OpenAI does ("Unrecognized request argument supplied: …"). A null value counts
as left out. The README's parameter list follows this table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from lanai.errors import BadInput

__all__ = ["Field", "RefusedField", "ROUTES", "OLLAMA_OPTIONS", "check_fields", "check_options"]

Check = Callable[[Any], bool]


class RefusedField(BadInput):
    """A field refused by name: OpenAI's error body carries it as ``param``."""

    def __init__(self, param: str, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.param = param


@dataclass(frozen=True)
class Field:
    kind: Literal["read", "metadata", "refused"]
    check: Check | None = None
    """read and metadata: the value's type (None: the route's parser checks it); refused: the values that
    ask for nothing lanai does not do, accepted."""
    expected: str = ""
    """What ``check`` wants, for the error."""
    hint: str = ""
    """refused: what to do instead."""


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_object(value: Any) -> bool:
    return isinstance(value, dict)


def _is_string_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


def _is_stream_options(value: Any) -> bool:
    """include_usage is read; include_obfuscation (pads events against length side channels) asks nothing."""
    known = {"include_usage", "include_obfuscation"}
    return isinstance(value, dict) and set(value) <= known and all(isinstance(v, bool) for v in value.values())


READ = Field("read")


def _read(check: Check, expected: str) -> Field:
    return Field("read", check, expected)


def _metadata(check: Check, expected: str) -> Field:
    return Field("metadata", check, expected)


def _refused(hint: str, harmless: Check | None = None) -> Field:
    return Field("refused", harmless, hint=hint)


_LEAVE_OUT = "leave it out."
_SAMPLING: dict[str, Field] = {
    "model": READ,
    "max_tokens": READ,
    "max_completion_tokens": READ,
    "temperature": READ,
    "top_p": READ,
    "stop": READ,
    "seed": READ,
    "n": READ,
    "presence_penalty": READ,
    "frequency_penalty": READ,
    "logit_bias": READ,
    "logprobs": READ,
    "stream": _read(_is_bool, "true or false"),
    "stream_options": _read(_is_stream_options, 'an object like {"include_usage": true}'),
    # llama.cpp's and vLLM's extensions
    "top_k": READ,
    "min_p": READ,
    "repeat_penalty": READ,
    "typical_p": READ,
    "mirostat": READ,
    "mirostat_tau": READ,
    "mirostat_eta": READ,
    "min_tokens": READ,
    "ignore_eos": _read(_is_bool, "true or false"),
    "keep_alive": READ,  # Ollama's: how long the model stays loaded
    # accepted, not used: they ask nothing of the answer
    "user": _metadata(_is_str, "a string"),
    "metadata": _metadata(_is_string_map, "an object of strings"),
    "prompt_cache_key": _metadata(_is_str, "a string"),  # lanai reuses cached prompts on its own
    "safety_identifier": _metadata(_is_str, "a string"),
    # refused unless the value asks for what lanai does anyway
    "store": _refused("lanai keeps no completions; leave 'store' out or false.", lambda v: v is False),
    "service_tier": _refused(
        "lanai has one tier; leave 'service_tier' out or 'auto'.", lambda v: v in ("auto", "default")
    ),
    "cache_prompt": _refused(
        "lanai always reuses cached prompts; leave 'cache_prompt' out or true.", lambda v: v is True
    ),
    "grammar": _refused('send "response_format" with a JSON Schema to POST /v1/chat/completions.'),
    "json_schema": _refused('send "response_format" with a JSON Schema to POST /v1/chat/completions.'),
    "n_probs": _refused("ask for 'logprobs' (and 'top_logprobs' in a chat)."),
}

OPENAI_CHAT: Mapping[str, Field] = {
    **_SAMPLING,
    "messages": READ,
    "top_logprobs": READ,
    "response_format": READ,
    "tools": READ,
    "tool_choice": READ,
    "parallel_tool_calls": READ,
    "modalities": _refused(
        "lanai's language models answer in text only; leave 'modalities' out.", lambda v: v == ["text"]
    ),
    "audio": _refused("lanai's language models answer in text only; " + _LEAVE_OUT),
    "prediction": _refused("predicted outputs are not used; " + _LEAVE_OUT),
    "web_search_options": _refused("lanai does not search the web; " + _LEAVE_OUT),
    "reasoning_effort": _refused("lanai's models take no reasoning effort; " + _LEAVE_OUT),
    "verbosity": _refused("use max_tokens or the system message to ask for shorter answers."),
    "functions": _refused('it is the old form of tools: send "tools": [{"type": "function", "function": {...}}].'),
    "function_call": _refused('it is the old form of tool_choice: send "tool_choice".'),
}

OPENAI_COMPLETIONS: Mapping[str, Field] = {
    **_SAMPLING,
    "prompt": READ,
    "echo": _refused("prepend the prompt yourself.", lambda v: v is False),
    "suffix": _refused("lanai continues text at its end only; " + _LEAVE_OUT, lambda v: v == ""),
    "best_of": _refused("ask for n answers and pick yourself.", lambda v: v == 1 and not isinstance(v, bool)),
}

OPENAI_EMBEDDINGS: Mapping[str, Field] = {
    "model": READ,
    "input": READ,
    "encoding_format": READ,
    "dimensions": READ,
    "keep_alive": READ,
    "user": _metadata(_is_str, "a string"),
}

ANTHROPIC_MESSAGES: Mapping[str, Field] = {
    "model": READ,
    "messages": READ,
    "system": READ,
    "max_tokens": READ,
    "stop_sequences": READ,
    "stream": READ,
    "temperature": READ,
    "top_p": READ,
    "top_k": READ,
    "tools": READ,
    "tool_choice": READ,
    "thinking": READ,  # only disabled thinking is accepted
    "output_config": READ,  # its format is refused
    "metadata": _metadata(_is_object, "an object"),
    "service_tier": _refused(
        "lanai has one tier; leave 'service_tier' out or 'auto'.", lambda v: v in ("auto", "standard_only")
    ),
    "container": _refused("lanai runs no tools itself; " + _LEAVE_OUT),
    "mcp_servers": _refused("lanai connects to no MCP servers; " + _LEAVE_OUT),
    "context_management": _refused("lanai edits no context; " + _LEAVE_OUT),
}

# counting reads the prompt; the generation settings may come along (they do not change the count)
ANTHROPIC_COUNT_TOKENS: Mapping[str, Field] = {**ANTHROPIC_MESSAGES}

# -- Ollama's native API (http/ollama.py); its ``options`` have a table of their own below --------------

_LOADED_ONCE = "lanai loads each model once with its own settings; " + _LEAVE_OUT
_PER_MODEL = "lanai loads each model once with its own settings: set it per model (lanai models add … --option {})."
_OLLAMA_GENERATING: dict[str, Field] = {
    "model": READ,
    "stream": _read(_is_bool, "true or false"),
    "options": _read(_is_object, "an object of options"),
    "format": READ,  # "json" or a JSON Schema: structured output
    "keep_alive": READ,
    "think": READ,  # false only: lanai's models do not think aloud
    "logprobs": _read(_is_bool, "true or false"),
    "top_logprobs": READ,
}

OLLAMA_CHAT: Mapping[str, Field] = {**_OLLAMA_GENERATING, "messages": READ, "tools": READ}

OLLAMA_GENERATE: Mapping[str, Field] = {
    **_OLLAMA_GENERATING,
    "prompt": READ,
    "system": READ,
    "raw": _read(_is_bool, "true or false"),
    "images": READ,  # only none: lanai's language models read text
    "suffix": _refused(
        "lanai continues text at its end only (no fill-in-the-middle); " + _LEAVE_OUT, lambda v: v == ""
    ),  # fmt: skip
    "template": _refused(
        'lanai renders prompts with the model\'s own chat template; format the prompt yourself and send "raw": true.',
        lambda v: v == "",
    ),
    "context": _refused("send the conversation as messages to POST /api/chat.", lambda v: v == []),
    "width": _refused("lanai's language models make text, not images; " + _LEAVE_OUT),
    "height": _refused("lanai's language models make text, not images; " + _LEAVE_OUT),
    "steps": _refused("lanai's language models make text, not images; " + _LEAVE_OUT),
}

OLLAMA_EMBED: Mapping[str, Field] = {
    "model": READ,
    "input": READ,
    "truncate": _read(_is_bool, "true or false"),
    "dimensions": READ,
    "options": _read(_is_object, "an object of options"),
    "keep_alive": READ,
}

OLLAMA_EMBEDDINGS: Mapping[str, Field] = {
    "model": READ,
    "prompt": READ,
    "options": _read(_is_object, "an object of options"),
    "keep_alive": READ,
}

OLLAMA_OPTIONS: Mapping[str, Field] = {
    "temperature": READ,
    "top_p": READ,
    "top_k": READ,
    "min_p": READ,
    "seed": READ,
    "num_predict": READ,
    "stop": READ,
    "num_ctx": READ,  # up to the context the model was loaded with
    "repeat_penalty": READ,
    "repeat_last_n": READ,
    "presence_penalty": READ,
    "frequency_penalty": READ,
    "typical_p": READ,
    "mirostat": READ,
    "mirostat_tau": READ,
    "mirostat_eta": READ,
    # refused unless the value asks for what lanai does anyway
    "tfs_z": _refused("use top_p or min_p.", lambda v: v == 1 and not isinstance(v, bool)),
    "penalize_newline": _refused("lanai's penalties treat a newline like any token.", lambda v: v is True),
    "num_keep": _refused("lanai does not shift a full context: the answer ends there (done_reason length)."),
    # how a model is loaded: set once per model (lanai models add … --option n_batch=512), not per request
    "num_batch": _refused(_PER_MODEL.format("n_batch=512")),
    "num_gpu": _refused(_PER_MODEL.format("n_gpu_layers=99")),
    "num_thread": _refused(_PER_MODEL.format("n_threads=4")),
    "main_gpu": _refused(_LOADED_ONCE),
    "low_vram": _refused(_LOADED_ONCE),
    "numa": _refused(_LOADED_ONCE),
    "use_mmap": _refused(_LOADED_ONCE),
    "use_mlock": _refused(_LOADED_ONCE),
    "vocab_only": _refused(_LOADED_ONCE),
    "embedding_only": _refused(_LOADED_ONCE),
    "logits_all": _refused(_LOADED_ONCE),
    "f16_kv": _refused(_LOADED_ONCE),
    "rope_frequency_base": _refused(_LOADED_ONCE),
    "rope_frequency_scale": _refused(_LOADED_ONCE),
    "num_gqa": _refused(_LOADED_ONCE),
}
"""The ``options`` object of Ollama's requests. On /api/embed and /api/embeddings the generation options
are accepted and not used (they ask nothing of an embedding), as Ollama does."""


ROUTES: Mapping[str, Mapping[str, Field]] = {
    "POST /v1/chat/completions": OPENAI_CHAT,
    "POST /v1/completions": OPENAI_COMPLETIONS,
    "POST /v1/embeddings": OPENAI_EMBEDDINGS,
    "POST /v1/messages": ANTHROPIC_MESSAGES,
    "POST /v1/messages/count_tokens": ANTHROPIC_COUNT_TOKENS,
    "POST /api/chat": OLLAMA_CHAT,
    "POST /api/generate": OLLAMA_GENERATE,
    "POST /api/embed": OLLAMA_EMBED,
    "POST /api/embeddings": OLLAMA_EMBEDDINGS,
}


def check_fields(data: Mapping[str, Any], route: str) -> None:
    """Refuse (``RefusedField``, naming it) a field ``route`` does not know, a refused field, or a value of
    the wrong type."""
    table = ROUTES[route]
    for key, value in data.items():
        if value is None:
            continue
        field = table.get(key)
        if field is None:
            elsewhere = next((other for other, fields in ROUTES.items() if fields.get(key, _NO).kind == "read"), None)
            hint = f"'{key}' is read by {elsewhere}, not here." if elsewhere else "check the field's name."
            raise RefusedField(key, f"Unrecognized request argument supplied: {key}", hint=hint)
        if field.kind == "refused":
            if field.check is None or not field.check(value):
                raise RefusedField(key, f"'{key}' is not supported by lanai.", hint=field.hint)
        elif field.check is not None and not field.check(value):
            raise RefusedField(key, f"'{key}' must be {field.expected}, not {value!r}.")


def check_options(options: Mapping[str, Any]) -> None:
    """Refuse (``RefusedField``, naming ``options.<key>``) an option of Ollama's that lanai does not know, a
    refused one, or a value of the wrong type (see ``OLLAMA_OPTIONS``)."""
    for key, value in options.items():
        if value is None:
            continue
        name = f"options.{key}"
        field = OLLAMA_OPTIONS.get(key)
        if field is None:
            known = ", ".join(k for k, f in OLLAMA_OPTIONS.items() if f.kind == "read")
            raise RefusedField(name, f"'{name}' is not an option lanai knows.", hint=f"lanai honours {known}.")
        if field.kind == "refused":
            if field.check is None or not field.check(value):
                raise RefusedField(name, f"'{name}' is not supported by lanai.", hint=field.hint)
        elif field.check is not None and not field.check(value):
            raise RefusedField(name, f"'{name}' must be {field.expected}, not {value!r}.")


_NO = Field("refused")
