"""Ollama's native API (``/api/*``) as values: its requests parsed into what lanai's engine takes, and its
answers as wire values (what the HTTP door sends, whole or as NDJSON lines, and what the OpenAPI document
publishes).

Shapes follow Ollama's published API (``docs/api.md`` of ollama/ollama), so the official ``ollama`` clients
read them unchanged. No HTTP here: the door (``lanai.http.ollama``) reads the body, checks the fields
against ``http.request_fields`` and calls these parsers; every refusal names the field at fault.

Sampling defaults are Ollama's (temperature 0.8, top_k 40, top_p 0.9, repeat_penalty 1.1 over the last 64
tokens), so an app that sends no options gets answers like the ones it got from Ollama.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from lanai.backends.base import Sampling
from lanai.errors import BadInput
from lanai.protocol.wire import Wire, doc

__all__ = [
    "ModelRef", "parse_model", "Options", "parse_options", "ToolDef", "Generating", "ChatAsk", "GenerateAsk",
    "parse_chat", "parse_generate", "embed_inputs", "rfc3339", "OllamaFunction", "OllamaToolCall",
    "OllamaMessage", "OllamaLogprob", "OllamaTopLogprob", "OllamaChatResponse", "OllamaGenerateResponse",
    "OllamaEmbedResponse", "OllamaEmbeddingsResponse", "OllamaDetails", "OllamaModel", "OllamaTags",
    "OllamaRunning", "OllamaProcesses", "OllamaShow", "OllamaVersion", "OllamaChatRequest",
    "OllamaGenerateRequest", "OllamaEmbedRequest", "OllamaEmbeddingsRequest", "OllamaModelRequest",
]  # fmt: skip

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MAX_STOPS = 16
_MAX_TOP_LOGPROBS = 20
_MAX_INPUTS = 2048
_MAX_WHOLE = 1 << 30  # counts of tokens: far beyond any context, and within what llama.cpp's ints hold
ROLES = ("system", "user", "assistant", "tool")
Format = Literal["json"] | dict[str, Any] | None


def _invalid(message: str, hint: str | None = None) -> BadInput:
    return BadInput(message, hint=hint)


# -- model names ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRef:
    """An Ollama model name, ``name:tag``: the store's model and, for a numeric tag, its version."""

    given: str
    name: str
    tag: str
    version: str | None
    """None: the active version (tag ``latest``)."""
    known: bool
    """False for a tag lanai has no meaning for (not latest, not a version number)."""


def parse_model(value: Any, *, key: str = "model") -> ModelRef:
    if not isinstance(value, str) or not value.strip():
        raise _invalid(f"'{key}' is required: a model name such as smol or smol:latest.",
                       hint="GET /api/tags lists the models.")  # fmt: skip
    given = value.strip()
    name, _, tag = given.lower().rpartition(":") if ":" in given else (given.lower(), "", "latest")
    tag = tag or "latest"
    if tag == "latest":
        return ModelRef(given, name, tag, None, True)
    return ModelRef(given, name, tag, tag if tag.isdigit() else None, tag.isdigit())


# -- options ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """The ``options`` lanai honours, with Ollama's defaults."""

    temperature: float = 0.8
    top_p: float = 0.9
    top_k: int = 40
    min_p: float = 0.0
    seed: int | None = None
    num_predict: int | None = None
    """None: until the model ends or the context is full (-1 and -2 in Ollama)."""
    stop: tuple[str, ...] = ()
    num_ctx: int | None = None
    """None: the context the model was loaded with."""
    repeat_penalty: float = 1.1
    repeat_last_n: int = 64
    """-1: the whole context."""
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    typical_p: float = 1.0
    mirostat: int = 0
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1

    def sampling(self, *, context: int, grammar: str | None) -> Sampling:
        window = context if self.repeat_last_n < 0 else self.repeat_last_n
        return Sampling(
            temperature=self.temperature, top_p=self.top_p, seed=self.seed, top_k=self.top_k, min_p=self.min_p,
            typical_p=self.typical_p, mirostat=self.mirostat, mirostat_tau=self.mirostat_tau,
            mirostat_eta=self.mirostat_eta, presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty, repeat_penalty=self.repeat_penalty or 1.0,
            penalty_last_n=window, grammar=grammar,
        )  # fmt: skip


def _number(options: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = options.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise _invalid(f"'options.{key}' must be a number from {low:g} to {high:g}, not {value!r}.")
    return float(value)


def _whole(options: Mapping[str, Any], key: str, low: int, what: str = "") -> int | None:
    value = options.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= _MAX_WHOLE:
        raise _invalid(f"'options.{key}' must be a whole number from {low} to {_MAX_WHOLE}{what}, not {value!r}.")
    return value


def parse_options(options: Mapping[str, Any] | None) -> Options:
    """The honoured options of a request (refused and unknown ones were turned away before)."""
    options = options or {}
    default = Options()
    predict = _whole(options, "num_predict", -2, " (-1: no limit)")
    if predict == 0:
        raise _invalid("'options.num_predict' must be ≥ 1, or -1 for no limit, not 0.")
    seed = options.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise _invalid(f"'options.seed' must be a whole number, not {seed!r}.")
    last_n = _whole(options, "repeat_last_n", -1, " (-1: the whole context)")
    return Options(
        temperature=_number(options, "temperature", default.temperature, 0.0, 2.0),
        top_p=_number(options, "top_p", default.top_p, 0.0, 1.0),
        top_k=_or(_whole(options, "top_k", 0), default.top_k),
        min_p=_number(options, "min_p", default.min_p, 0.0, 1.0),
        seed=None if seed is None or seed < 0 else seed,  # Ollama's -1: a random seed
        num_predict=None if predict is None or predict < 0 else predict,
        stop=_stops(options.get("stop")),
        num_ctx=_whole(options, "num_ctx", 1),
        repeat_penalty=_number(options, "repeat_penalty", default.repeat_penalty, 0.0, 10.0),
        repeat_last_n=_or(last_n, default.repeat_last_n),
        presence_penalty=_number(options, "presence_penalty", 0.0, -2.0, 2.0),
        frequency_penalty=_number(options, "frequency_penalty", 0.0, -2.0, 2.0),
        typical_p=_number(options, "typical_p", default.typical_p, 0.0, 1.0),
        mirostat=_or(_mirostat(options), default.mirostat),
        mirostat_tau=_number(options, "mirostat_tau", default.mirostat_tau, 0.0, 100.0),
        mirostat_eta=_number(options, "mirostat_eta", default.mirostat_eta, 0.0, 1.0),
    )  # fmt: skip


def _mirostat(options: Mapping[str, Any]) -> int | None:
    value = options.get("mirostat")
    if value is not None and (isinstance(value, bool) or value not in (0, 1, 2)):
        raise _invalid(f"'options.mirostat' must be 0 (off), 1 or 2 (Mirostat 2.0), not {value!r}.")
    return None if value is None else int(value)


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def _stops(stop: Any) -> tuple[str, ...]:
    if stop is None:
        return ()
    if isinstance(stop, str) and stop:
        return (stop,)
    if isinstance(stop, list) and len(stop) <= _MAX_STOPS and all(isinstance(s, str) and s for s in stop):
        return tuple(stop)
    raise _invalid(f"'options.stop' must be a list of up to {_MAX_STOPS} non-empty strings.")


# -- chat and generate --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolDef:
    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class Generating:
    """What chat and generate share: how to sample, the answer's shape, streaming, log probabilities."""

    options: Options
    format: Format = None
    stream: bool = True
    logprobs: int | None = None
    """Alternatives to report per token (None: no log probabilities)."""


@dataclass(frozen=True)
class ChatAsk:
    messages: list[dict[str, Any]]
    """In OpenAI's shape, as lanai's chat templates and tool-call code take them; empty: load or unload."""
    tools: tuple[ToolDef, ...]
    generating: Generating


@dataclass(frozen=True)
class GenerateAsk:
    prompt: str
    """Empty: load or unload the model."""
    system: str | None
    raw: bool
    generating: Generating


def _generating(data: Mapping[str, Any], options: Options) -> Generating:
    think = data.get("think")
    if think not in (None, False):
        raise _invalid("'think' is not supported: lanai's language models do not think aloud.",
                       hint='leave "think" out, or false.')  # fmt: skip
    form = data.get("format")
    if form in (None, ""):
        form = None
    elif form != "json" and not isinstance(form, dict):
        raise _invalid("'format' must be \"json\" or a JSON Schema object.")
    top = data.get("top_logprobs")
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= _MAX_TOP_LOGPROBS):
        raise _invalid(f"'top_logprobs' must be a whole number from 0 to {_MAX_TOP_LOGPROBS}, not {top!r}.")
    if top and not data.get("logprobs"):
        raise _invalid("'top_logprobs' needs 'logprobs': true.")
    stream = data.get("stream")
    return Generating(options, form, stream is not False, (top or 0) if data.get("logprobs") else None)


def parse_chat(data: Mapping[str, Any], options: Options) -> ChatAsk:
    messages = data.get("messages")
    if messages is None:
        messages = []
    if not isinstance(messages, list):
        raise _invalid("'messages' must be a list of {role, content} objects.")
    return ChatAsk(_messages(messages), _tools(data.get("tools")), _generating(data, options))


def parse_generate(data: Mapping[str, Any], options: Options) -> GenerateAsk:
    prompt, system = data.get("prompt") or "", data.get("system")
    if not isinstance(prompt, str):
        raise _invalid("'prompt' must be a string.")
    if system is not None and not isinstance(system, str):
        raise _invalid("'system' must be a string.")
    _no_images(data.get("images"), "images")
    raw = data.get("raw") is True
    if raw and system:
        raise _invalid("'system' cannot go with 'raw': true, which sends the prompt as it is.",
                       hint="put the system prompt into your formatted prompt.")  # fmt: skip
    return GenerateAsk(prompt, system or None, raw, _generating(data, options))


def _no_images(images: Any, where: str) -> None:
    if images not in (None, []):
        raise _invalid(f"'{where}' holds images; lanai's language models read text only.",
                       hint="send text (lanai's vision models take images at their task routes).")  # fmt: skip


def _messages(messages: list[Any]) -> list[dict[str, Any]]:
    """Ollama's turns in OpenAI's shape. Ollama's calls have no ids: each gets one, and a tool turn
    answers the earliest call not yet answered (by name when it gives ``tool_name``)."""
    out: list[dict[str, Any]] = []
    pending: list[tuple[str, str]] = []  # (id, name) of calls not yet answered
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ROLES:
            raise _invalid(f"messages[{i}] needs a 'role' among {', '.join(ROLES)}.")
        assert isinstance(message, dict)
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            raise _invalid(f"messages[{i}].content must be a string.")
        _no_images(message.get("images"), f"messages[{i}].images")
        # an earlier answer's "thinking" is dropped, as Ollama drops it for templates without a place for it
        item: dict[str, Any] = {"role": role, "content": content or ""}
        if role == "assistant" and message.get("tool_calls"):
            item["tool_calls"] = _history_calls(message["tool_calls"], i, pending)
        if role == "tool":
            name = message.get("tool_name") or message.get("name")
            match = next((p for p in pending if p[1] == name), pending[0] if pending else None)
            if match is not None:
                pending.remove(match)
            item["tool_call_id"] = match[0] if match else f"call_{i}"
            if isinstance(name, str) and name:
                item["name"] = name
        out.append(item)
    return out


def _history_calls(calls: Any, index: int, pending: list[tuple[str, str]]) -> list[dict[str, Any]]:
    where = f"messages[{index}].tool_calls"
    if not isinstance(calls, list):
        raise _invalid(f"{where} must be a list of {{function: {{name, arguments}}}}.")
    out = []
    for j, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        arguments = function.get("arguments", {}) if isinstance(function, dict) else None
        if not isinstance(name, str) or not isinstance(arguments, (dict, str)):
            raise _invalid(f"{where}[{j}] needs a 'function' with a 'name' and 'arguments' (an object).")
        ident = str(call.get("id") or f"call_{index}_{j}")
        pending.append((ident, name))
        out.append({"id": ident, "type": "function", "function": {"name": name, "arguments": arguments}})
    return out


def _tools(given: Any) -> tuple[ToolDef, ...]:
    if given in (None, []):
        return ()
    if not isinstance(given, list):
        raise _invalid("'tools' must be a list of {type: function, function: {name, description, parameters}}.")
    tools = []
    for i, tool in enumerate(given):
        function = (
            tool.get("function") if isinstance(tool, dict) and tool.get("type", "function") == "function" else None
        )
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise _invalid(f"tools[{i}] needs type 'function' and a function name of letters, digits, '_' and '-' "
                           "(at most 64).")  # fmt: skip
        assert isinstance(function, dict)
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        if not isinstance(parameters, dict):
            raise _invalid(f"tools[{i}].function.parameters must be a JSON Schema object.")
        tools.append(ToolDef(name, str(function.get("description") or ""), parameters))
    if len({t.name for t in tools}) != len(tools):
        raise _invalid("two tools have the same name.")
    return tuple(tools)


def embed_inputs(value: Any, key: str) -> list[str]:
    """The texts of /api/embed (``input``: a string or a list) or /api/embeddings (``prompt``)."""
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise _invalid(f"'{key}' must be a string or a non-empty list of strings.")
    if len(texts) > _MAX_INPUTS:
        raise _invalid(f"'{key}' holds {len(texts)} texts; at most {_MAX_INPUTS} per request.",
                       hint="send them in several requests.")  # fmt: skip
    return texts


def rfc3339(seconds: float | None = None) -> str:
    """A time as Ollama writes one: ``2024-06-04T14:38:31.837530Z``."""
    moment = datetime.now(timezone.utc) if seconds is None else datetime.fromtimestamp(seconds, timezone.utc)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


# -- answers ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OllamaFunction(Wire):
    """A call of one of the request's tools."""

    name: str = doc("The tool.")
    arguments: dict[str, Any] = doc("Its arguments.")
    index: int = doc("Its place among the answer's calls.", default=0, omit_none=True)


@dataclass(frozen=True)
class OllamaToolCall(Wire):
    """A tool call of the answer."""

    function: OllamaFunction = doc("The call.")


@dataclass(frozen=True)
class OllamaMessage(Wire):
    """A turn of the conversation: the answer (whole, or this line's piece of it)."""

    role: Literal["assistant"] = doc("Always assistant.")
    content: str = doc("The text (this line's piece when streaming).")
    tool_calls: tuple[OllamaToolCall, ...] | None = doc("The tools the answer calls.", default=None, omit_none=True)


@dataclass(frozen=True)
class OllamaTopLogprob(Wire):
    """A likely token at a position."""

    token: str = doc("The token's text.")
    logprob: float = doc("Its log probability.")
    bytes: tuple[int, ...] = doc("The token's bytes.", default=())


@dataclass(frozen=True)
class OllamaLogprob(Wire):
    """A generated token's log probability, and the likeliest alternatives at its position."""

    token: str = doc("The token's text.")
    logprob: float = doc("Its log probability.")
    bytes: tuple[int, ...] = doc("The token's bytes.", default=())
    top_logprobs: tuple[OllamaTopLogprob, ...] = doc("The likeliest tokens, best first.", default=())


_TIMINGS = {
    "total_duration": "Nanoseconds from the request's arrival to its last token.",
    "load_duration": "Nanoseconds spent loading the model for this request (near 0 when it was loaded).",
    "prompt_eval_count": "Tokens of the prompt.",
    "prompt_eval_duration": "Nanoseconds spent reading the prompt (its part not found in the model's cache).",
    "eval_count": "Tokens generated.",
    "eval_duration": "Nanoseconds from the first generated token to the last.",
}


def _timing(key: str) -> Any:
    return doc("Last line only. " + _TIMINGS[key], default=None, omit_none=True, minimum=0)


@dataclass(frozen=True)
class _Done(Wire):
    done: bool = doc("Whether this is the last line (always true for a whole answer).")
    done_reason: str | None = doc(
        "Last line only: stop (the model ended or a stop string came), length (num_predict or the context was "
        "reached), load or unload (a request without messages or prompt).", default=None, omit_none=True,
    )  # fmt: skip
    total_duration: int | None = _timing("total_duration")
    load_duration: int | None = _timing("load_duration")
    prompt_eval_count: int | None = _timing("prompt_eval_count")
    prompt_eval_duration: int | None = _timing("prompt_eval_duration")
    eval_count: int | None = _timing("eval_count")
    eval_duration: int | None = _timing("eval_duration")
    logprobs: tuple[OllamaLogprob, ...] | None = doc(
        "With logprobs: this line's tokens (every token for a whole answer).", default=None, omit_none=True
    )


@dataclass(frozen=True, kw_only=True)
class OllamaChatResponse(_Done):
    """The answer to a conversation, whole or one NDJSON line of it."""

    model: str = doc("The model, as the request named it.")
    created_at: str = doc("When this was written (RFC 3339).")
    message: OllamaMessage = doc("The answer (this line's piece when streaming).")


@dataclass(frozen=True, kw_only=True)
class OllamaGenerateResponse(_Done):
    """The continuation of a prompt, whole or one NDJSON line of it."""

    model: str = doc("The model, as the request named it.")
    created_at: str = doc("When this was written (RFC 3339).")
    response: str = doc("The text (this line's piece when streaming).")


@dataclass(frozen=True)
class OllamaEmbedResponse(Wire):
    """One embedding per input."""

    model: str = doc("The model, as the request named it.")
    embeddings: tuple[Sequence[float], ...] = doc("The vectors, in the order of the inputs.")
    total_duration: int = doc("Nanoseconds from the request's arrival to its answer.")
    load_duration: int = doc("Nanoseconds spent loading the model for this request.")
    prompt_eval_count: int = doc("Tokens read.")


@dataclass(frozen=True)
class OllamaEmbeddingsResponse(Wire):
    """The embedding of the prompt (the older /api/embeddings)."""

    embedding: Sequence[float] = doc("The vector.")


@dataclass(frozen=True)
class OllamaDetails(Wire):
    """What the model file is."""

    parent_model: str = doc("Always empty.")
    format: str = doc("gguf or onnx.")
    family: str = doc("The architecture (GGUF's general.architecture), e.g. llama.")
    families: tuple[str, ...] | None = doc("The architecture, as a list.")
    parameter_size: str = doc("Weights, e.g. 134.52M.")
    quantization_level: str = doc("The GGUF file type, e.g. Q4_1.")


@dataclass(frozen=True)
class OllamaModel(Wire):
    """A model of the store."""

    name: str = doc("name:latest (the active version).")
    model: str = doc("The same.")
    modified_at: str = doc("When its active version was added (RFC 3339).")
    size: int = doc("Bytes of its files.")
    digest: str = doc("SHA-256 of its model file (hex).")
    details: OllamaDetails = doc("What the model file is.")


@dataclass(frozen=True)
class OllamaTags(Wire):
    """The language and text-embedding models of the store that the caller may use."""

    models: tuple[OllamaModel, ...] = doc("The models.")


@dataclass(frozen=True)
class OllamaRunning(Wire):
    """A loaded model."""

    name: str = doc("name:latest.")
    model: str = doc("The same.")
    size: int = doc("Bytes of memory it took when it loaded (its files' size until that is known).")
    digest: str = doc("SHA-256 of its model file (hex).")
    details: OllamaDetails = doc("What the model file is.")
    expires_at: str = doc("When it will be unloaded if idle (far in the future for a model that stays loaded).")
    size_vram: int = doc("Bytes on a GPU: 0, lanai's language models run on the CPU.")
    context_length: int = doc("Tokens of context per request.")


@dataclass(frozen=True)
class OllamaProcesses(Wire):
    """The loaded language and text-embedding models."""

    models: tuple[OllamaRunning, ...] = doc("The models.")


@dataclass(frozen=True)
class OllamaShow(Wire):
    """A model's description."""

    modelfile: str = doc("A description in Modelfile form (lanai has no Modelfiles; for reading only).")
    parameters: str = doc("Its settings, one per line (num_ctx, stop).")
    template: str = doc("Its chat template (Jinja, from the GGUF file), empty if it has none.")
    details: OllamaDetails = doc("What the model file is.")
    model_info: dict[str, Any] = doc("The GGUF file's metadata (large arrays empty unless verbose).")
    capabilities: tuple[str, ...] = doc("completion, tools, embedding.")
    modified_at: str = doc("When its active version was added (RFC 3339).")


@dataclass(frozen=True)
class OllamaVersion(Wire):
    """The Ollama API level lanai speaks."""

    version: str = doc("The Ollama release whose API lanai follows.")
    lanai: str = doc("lanai's own version.")


# -- requests (for the OpenAPI document; the parsers above read them) ------------------------------------


@dataclass(frozen=True)
class OllamaRequestMessage(Wire):
    role: Literal["system", "user", "assistant", "tool"] = doc("Who said it.")
    content: str = doc("The text.", default="", omit_none=True)
    tool_calls: list[OllamaToolCall] | None = doc("An assistant turn's calls.", default=None, omit_none=True)
    tool_name: str | None = doc("A tool turn: the tool whose result it is.", default=None, omit_none=True)


@dataclass(frozen=True, kw_only=True)
class _OllamaGenerating(Wire):
    model: str = doc("A model: name or name:latest (GET /api/tags lists them).")
    stream: bool = doc("Answer as NDJSON lines (the default), or one object with false.", default=True,
                       omit_none=True)  # fmt: skip
    options: dict[str, Any] | None = doc(
        "temperature, top_p, top_k, min_p, typical_p, seed, num_predict, stop, num_ctx (up to the model's), "
        "repeat_penalty, repeat_last_n, presence_penalty, frequency_penalty, mirostat, mirostat_tau, mirostat_eta; "
        "others are refused by name.",
        default=None, omit_none=True,
    )  # fmt: skip
    format: str | dict[str, Any] | None = doc('"json", or a JSON Schema the answer must match.', default=None,
                                              omit_none=True)  # fmt: skip
    keep_alive: str | float | None = doc('How long a model that loads on demand stays loaded: "5m", 300, 0 '
                                         "(unload), -1 (for ever).", default=None, omit_none=True)  # fmt: skip
    think: bool | None = doc("Only false: lanai's models do not think aloud.", default=None, omit_none=True)
    logprobs: bool | None = doc("Report each token's log probability.", default=None, omit_none=True)
    top_logprobs: int | None = doc("With logprobs: alternatives per token.", default=None, omit_none=True,
                                   minimum=0, maximum=_MAX_TOP_LOGPROBS)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class OllamaChatRequest(_OllamaGenerating):
    """A conversation to answer."""

    messages: list[OllamaRequestMessage] = doc("The conversation; empty: load (or, with keep_alive 0, unload).",
                                           default=[], omit_none=True)  # fmt: skip
    tools: list[dict[str, Any]] | None = doc("Tools: {type: function, function: {name, description, parameters}}.",
                                             default=None, omit_none=True)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class OllamaGenerateRequest(_OllamaGenerating):
    """A prompt to continue."""

    prompt: str = doc("The prompt; empty: load (or, with keep_alive 0, unload).", default="", omit_none=True)
    system: str | None = doc("A system prompt.", default=None, omit_none=True)
    raw: bool | None = doc("Send the prompt as it is, without the chat template.", default=None, omit_none=True)
    images: list[str] | None = doc("Only none: lanai's language models read text.", default=None, omit_none=True,
                                   maxItems=0)  # fmt: skip


@dataclass(frozen=True)
class OllamaEmbedRequest(Wire):
    """Texts to embed."""

    model: str = doc("A text-embedding model.")
    input: str | list[str] = doc("A text, or a list of texts.")
    truncate: bool | None = doc("A GGUF encoder: cut a text longer than its context (the default), or refuse it "
                                "with false. An ONNX encoder reads a long text in windows.", default=None,
                                omit_none=True)  # fmt: skip
    dimensions: int | None = doc("Keep the first so many values.", default=None, omit_none=True, minimum=1)
    options: dict[str, Any] | None = doc("Accepted; they ask nothing of an embedding.", default=None, omit_none=True)
    keep_alive: str | float | None = doc("As for /api/chat.", default=None, omit_none=True)


@dataclass(frozen=True)
class OllamaEmbeddingsRequest(Wire):
    """A text to embed (the older /api/embeddings)."""

    model: str = doc("A text-embedding model.")
    prompt: str = doc("The text.")
    options: dict[str, Any] | None = doc("Accepted; they ask nothing of an embedding.", default=None, omit_none=True)
    keep_alive: str | float | None = doc("As for /api/chat.", default=None, omit_none=True)


@dataclass(frozen=True)
class OllamaModelRequest(Wire):
    """A model, by name."""

    model: str = doc("name or name:latest.")
    verbose: bool | None = doc("show: the GGUF's large arrays too.", default=None, omit_none=True)
