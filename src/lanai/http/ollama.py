"""Ollama's native API over lanai's language models and store: ``/api/chat``, ``/api/generate``,
``/api/embed``, ``/api/embeddings``, ``/api/tags``, ``/api/show``, ``/api/ps``, ``/api/version``.

Apps, editor plug-ins and the ``ollama`` clients that speak Ollama's API work against a lanai box unchanged:
requests are parsed by ``lanai.protocol.ollama``, conversations are rendered and tool calls read as the
OpenAI door does (``lanai.tasks.tool_calls``), and answers stream as NDJSON lines (one JSON object per
line; the last has ``done: true`` and the timings). Errors are ``{"error": "…"}`` with lanai's statuses; an
error after the stream has begun is a line with an ``error`` key, which the clients raise.

Model names may carry a tag: ``smol`` and ``smol:latest`` are the store's model ``smol`` (its active
version), ``smol:3`` is its version 3 when that is the one loaded. Ollama's model management (pull, push,
create, copy, delete) answers with how models come to a lanai box instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

import lanai
from lanai.dataplane import DataPlane
from lanai.dataplane.residency import parse_duration
from lanai.errors import BadInput, LanaiError, ModelNotFound, StoreError, VersionNotFound, WrongTask
from lanai.http.auth import allow_model, caller
from lanai.http.body import json_object, read_body
from lanai.http.errors import describe, error_response, kind_of, retry_headers, status_of
from lanai.http.held import load_and_hold, release_held
from lanai.http.json_response import JSONResponse, dumps
from lanai.http.request_fields import check_fields, check_options
from lanai.http.whole import collect_one
from lanai.protocol.ollama import (
    ChatAsk,
    Generating,
    ModelRef,
    OllamaChatResponse,
    OllamaDetails,
    OllamaEmbeddingsResponse,
    OllamaEmbedResponse,
    OllamaFunction,
    OllamaGenerateResponse,
    OllamaLogprob,
    OllamaMessage,
    OllamaModel,
    OllamaProcesses,
    OllamaRunning,
    OllamaShow,
    OllamaTags,
    OllamaToolCall,
    OllamaTopLogprob,
    OllamaVersion,
    embed_inputs,
    parse_chat,
    parse_generate,
    parse_model,
    parse_options,
    rfc3339,
)
from lanai.store.gguf import GgufInfo, human_count, read_gguf
from lanai.tasks.tool_calls import (
    CallArguments,
    CallReader,
    CallStart,
    Content,
    Tool,
    arguments_object,
    prepare_messages,
)

__all__ = ["routes", "OLLAMA_VERSION"]

OLLAMA_VERSION = "0.12.0"
"""The Ollama release whose API this door follows: clients that check the server's version (to decide
whether it has tools, structured output, embed's dimensions…) see one that has them."""

_TEXT_TASKS = ("chat", "completion", "embed")
"""The models this API lists and serves: language models and text encoders (not vision models)."""
_FOREVER = 253402300799.0  # 9999-12-31T23:59:59Z: expires_at of a model that stays loaded
_ROUTES_FOR = {"chat": "POST /api/chat", "completion": "POST /api/generate", "embed": "POST /api/embed"}
Endpoint = Callable[[Request], Awaitable[Response]]


def _ollama_errors(endpoint: Endpoint) -> Endpoint:
    """lanai's errors as Ollama's ``{"error": "…"}`` (with lanai's ``kind``), with this API's routes as hints."""

    async def wrapped(request: Request) -> Response:
        try:
            return await endpoint(request)
        except LanaiError as exc:
            message = describe(exc)
            if isinstance(exc, WrongTask) and exc.hint is None:
                route = _ROUTES_FOR.get(exc.task, f"POST /v1/models/{exc.model}/{exc.task}")
                message = f"{exc.message} Hint: send its requests to {route}."
            return error_response(status_of(exc), message, retry_headers(exc), kind_of(exc))
        finally:
            release_held(request)

    return wrapped


# -- models ---------------------------------------------------------------------------------------------


def _not_found(ref: ModelRef, plane: DataPlane, why: str = "") -> ModelNotFound:
    names = [s.name for s in plane.store.list() if s.task in _TEXT_TASKS and s.active is not None]
    listed = ", ".join(f"{n}:latest" for n in names) or "none"
    return ModelNotFound(
        f"model '{ref.given}' not found{why}",
        hint=f"models here: {listed}. lanai does not pull models: add one on the box with lanai models add "
        "FILE.gguf --name NAME --task chat.",
    )


async def _model(
    data: dict[str, Any], plane: DataPlane, request: Request, *, load: bool = True
) -> tuple[ModelRef, float]:
    """The request's model, allowed and loaded (if it loads on demand; not if ``load`` is false), and the
    seconds its load took."""
    ref = parse_model(data.get("model"))
    request.scope["lanai.model"] = ref.name
    allow_model(request, ref.name)
    if not ref.known:
        raise _not_found(ref, plane, f": lanai's tags are latest or a version number, not {ref.tag!r}")
    keep = _keep_alive(data)
    started = time.perf_counter()
    if not load and ref.name not in plane.models:  # asked to unload a model that is not loaded: nothing to do
        if not any(s.name == ref.name and s.task in _TEXT_TASKS for s in plane.store.list()):
            raise _not_found(ref, plane)
        return ref, 0.0
    await load_and_hold(request, plane, ref.name)  # held until the handler returns; loaded if on demand
    loaded_in = time.perf_counter() - started
    try:
        plane.get(ref.name, ref.version)
    except VersionNotFound as exc:
        raise _not_found(ref, plane, f": {exc.message}") from None
    except ModelNotFound:
        raise _not_found(ref, plane) from None
    if keep is not None:
        _apply_keep_alive(plane, ref.name, keep)
    return ref, loaded_in


def _keep_alive(data: dict[str, Any]) -> float | None | str:
    """Seconds (None: for ever), or "" when the request does not say."""
    value = data.get("keep_alive")
    if value is None:
        return ""
    try:
        seconds = parse_duration(value)
    except LanaiError as exc:
        raise BadInput(exc.message, hint=exc.hint) from None
    if seconds is not None and not 0 <= seconds <= _FOREVER - time.time():
        raise BadInput(f"keep_alive {value!r} is not a duration.", hint='e.g. "5m", 300, 0 (unload), -1 (for ever).')
    return seconds


def _apply_keep_alive(plane: DataPlane, name: str, keep: float | None | str) -> None:
    if keep == "":
        return
    if plane.residency.on_demand(name):
        plane.residency.touch(name, keep)  # type: ignore[arg-type]
    elif keep == 0:
        raise BadInput(
            f"model '{name}' loads at start and stays loaded: keep_alive 0 cannot unload it.",
            hint=f'set load = "demand" under [models.{name}] in lanai.toml, or leave keep_alive out.',
        )
    # a model that stays loaded is loaded for at least as long as any other keep_alive asks


# -- chat and generate ------------------------------------------------------------------------------------


async def _body(request: Request, plane: DataPlane) -> dict[str, Any]:
    return json_object(await read_body(request, plane.settings.max_body_bytes))


def _options(data: dict[str, Any]) -> Any:
    options = data.get("options") or {}
    check_options(options)
    return parse_options(options)


def _grammar(generating: Generating) -> str | None:
    from lanai.tasks.structured import json_grammar

    if generating.format is None:
        return None
    return json_grammar(None if generating.format == "json" else generating.format, where="format")


def _request(plane: DataPlane, name: str, prompt: list[int], generating: Generating, grammar: str | None) -> Any:
    from lanai.generation import GenerateRequest

    context = int(plane.language_model(name).backend.n_ctx)
    options = generating.options
    limit, max_tokens = options.num_ctx, options.num_predict
    if limit is not None:
        if limit > context:
            raise BadInput(f"'options.num_ctx' is {limit}; model '{name}' was loaded with {context} tokens of "
                           "context per request.", hint=f"ask for at most {context}, or add the model again "
                           f"with --option n_ctx={limit}.")  # fmt: skip
        if len(prompt) >= limit:
            raise BadInput(f"the prompt is {len(prompt)} tokens; 'options.num_ctx' is {limit}.",
                           hint="shorten the prompt, or raise num_ctx.")  # fmt: skip
        room = limit - len(prompt)
        max_tokens = room if max_tokens is None else min(max_tokens, room)
    sampling = options.sampling(context=limit or context, grammar=grammar)
    return GenerateRequest(prompt, max_tokens, sampling, options.stop, generating.logprobs)


def _loading(data: dict[str, Any], ref: ModelRef, chat: bool) -> Response:
    """The answer to a request without messages or prompt: the model is loaded, or will be unloaded."""
    reason = "unload" if _keep_alive(data) == 0 else "load"
    common: dict[str, Any] = {"model": ref.given, "created_at": rfc3339(), "done": True, "done_reason": reason}
    if chat:
        body = OllamaChatResponse(message=OllamaMessage("assistant", ""), **common).to_dict()
    else:
        body = OllamaGenerateResponse(response="", **common).to_dict()
    return JSONResponse(body)


@_ollama_errors
async def chat(request: Request) -> Response:
    arrived = time.perf_counter()
    plane: DataPlane = request.app.state.plane
    data = await _body(request, plane)
    check_fields(data, "POST /api/chat")
    ask = parse_chat(data, _options(data))
    ref, loaded_in = await _model(data, plane, request, load=bool(ask.messages) or _keep_alive(data) != 0)
    if not ask.messages:
        return _loading(data, ref, chat=True)
    if ask.tools and ask.generating.format is not None:
        raise BadInput("'format' and 'tools' cannot both shape the answer.", hint="leave one of them out.")
    prompt, reader = _chat_prompt(plane, ref.name, ask)
    requested = _request(plane, ref.name, prompt, ask.generating, _grammar(ask.generating))
    (generation,) = plane.generate_many(ref.name, [requested])
    answer = _Answer(ref.given, True, arrived, loaded_in, reader, ask.generating.logprobs is not None)
    return await _respond(request, generation, answer, ask.generating.stream)


def _chat_prompt(plane: DataPlane, name: str, ask: ChatAsk) -> tuple[list[int], CallReader | None]:
    family = plane.tool_family(name)
    tools = [Tool(t.name, t.description, t.parameters) for t in ask.tools]
    rendered, described = prepare_messages(family, ask.messages, tools)
    reader = CallReader(family, parallel=family.parallel) if tools else None
    return plane.chat_prompt(name, rendered, described), reader


@_ollama_errors
async def generate(request: Request) -> Response:
    arrived = time.perf_counter()
    plane: DataPlane = request.app.state.plane
    data = await _body(request, plane)
    check_fields(data, "POST /api/generate")
    ask = parse_generate(data, _options(data))
    ref, loaded_in = await _model(data, plane, request, load=bool(ask.prompt) or _keep_alive(data) != 0)
    if not ask.prompt:
        return _loading(data, ref, chat=False)
    if ask.raw or plane.get(ref.name).info.task == "completion":  # a completion model continues text as it is
        if ask.system:
            raise BadInput(f"model '{ref.name}' continues text; it takes no 'system' prompt.",
                           hint="put it at the start of the prompt.")  # fmt: skip
        prompt = plane.text_prompt(ref.name, ask.prompt)
    else:
        system = [{"role": "system", "content": ask.system}] if ask.system else []
        prompt = plane.chat_prompt(ref.name, [*system, {"role": "user", "content": ask.prompt}])
    requested = _request(plane, ref.name, prompt, ask.generating, _grammar(ask.generating))
    (generation,) = plane.generate_many(ref.name, [requested])
    answer = _Answer(ref.given, False, arrived, loaded_in, None, ask.generating.logprobs is not None)
    return await _respond(request, generation, answer, ask.generating.stream)


class _Answer:
    """How one chat or generate answer is written: its lines as it streams, or the whole of it."""

    def __init__(self, model: str, chat: bool, arrived: float, loaded_in: float, reader: CallReader | None,
                 logprobs: bool) -> None:  # fmt: skip
        self.model, self.chat, self.arrived, self.loaded_in, self.reader = model, chat, arrived, loaded_in, reader
        self.logprobs = logprobs
        self.calls: dict[int, list[str]] = {}  # index → [name, arguments so far]

    def text(self, piece: str, final: bool) -> str:
        """The content in ``piece`` (calls taken out of it, under tools)."""
        if self.reader is None:
            return piece
        events = self.reader.feed(piece) + (self.reader.finish() if final else [])
        for event in events:
            if isinstance(event, CallStart):
                self.calls[event.index] = [event.name, ""]
            elif isinstance(event, CallArguments):
                self.calls[event.index][1] += event.text
        return "".join(e.text for e in events if isinstance(e, Content))

    def tool_calls(self) -> tuple[OllamaToolCall, ...] | None:
        if not self.calls:
            return None
        calls = sorted(self.calls.items())
        return tuple(OllamaToolCall(OllamaFunction(name, arguments_object(text), i)) for i, (name, text) in calls)

    def line(self, content: str, *, done: bool = False, last: Any = None, logprobs: Any = None,
             calls: tuple[OllamaToolCall, ...] | None = None) -> dict[str, Any]:  # fmt: skip
        fields: dict[str, Any] = {"model": self.model, "created_at": rfc3339(), "done": done, "logprobs": logprobs}
        if last is not None:
            fields.update(_timings(last, self.arrived, self.loaded_in), done_reason=last.finish_reason)
        if self.chat:
            return OllamaChatResponse(message=OllamaMessage("assistant", content, calls), **fields).to_dict()
        return OllamaGenerateResponse(response=content, **fields).to_dict()


def _timings(last: Any, arrived: float, loaded_in: float) -> dict[str, int]:
    """Ollama's timings (nanoseconds) from the engine's own measurements of this request."""
    usage = last.usage

    def ns(seconds: float) -> int:
        return max(1, int(seconds * 1e9))

    total = {"total_duration": ns(time.perf_counter() - arrived), "load_duration": ns(loaded_in)}
    if usage is None:
        return total
    return {**total, "prompt_eval_count": usage.prompt_tokens,
            "prompt_eval_duration": ns(usage.time_to_first_token_s - usage.queue_s),
            "eval_count": usage.completion_tokens, "eval_duration": ns(usage.decode_s)}  # fmt: skip


def _logprobs(chunks: Sequence[Any], asked: bool) -> tuple[OllamaLogprob, ...] | None:
    if not asked:
        return None
    return tuple(
        OllamaLogprob(_piece(e.text), e.logprob, tuple(e.text),
                      tuple(OllamaTopLogprob(_piece(t), lp, tuple(t)) for _, t, lp in e.top))
        for chunk in chunks for e in chunk.logprobs
    )  # fmt: skip


def _piece(data: bytes) -> str:
    return data.decode("utf-8", "replace")


async def _respond(request: Request, generation: Any, answer: _Answer, stream: bool) -> Response:
    if stream:
        lines = _stream(generation, answer)
        return StreamingResponse(lines, media_type="application/x-ndjson", headers={"Cache-Control": "no-cache"})
    chunks = await collect_one(request, generation)
    if chunks is None:  # the client went away; its slot is free again
        return Response(status_code=499)
    last = chunks[-1]
    if last.error:
        return error_response(500, last.error)
    content = answer.text("".join(c.text for c in chunks), final=True)
    logprobs = _logprobs(chunks, answer.logprobs)
    calls = answer.tool_calls()
    if calls:
        content = content.strip()
    return JSONResponse(answer.line(content, done=True, last=last, logprobs=logprobs, calls=calls))


async def _stream(generation: Any, answer: _Answer) -> AsyncIterator[bytes]:
    try:
        async for chunk in generation:
            if chunk.error:
                yield dumps({"error": chunk.error}) + b"\n"
                return
            final = chunk.finish_reason is not None
            content = answer.text(chunk.text, final)
            logprobs = _logprobs([chunk], answer.logprobs) if chunk.logprobs else None
            if content or logprobs:
                yield dumps(answer.line(content, logprobs=logprobs)) + b"\n"
            if final:
                calls = answer.tool_calls()
                if calls:
                    yield dumps(answer.line("", calls=calls)) + b"\n"
                yield dumps(answer.line("", done=True, last=chunk)) + b"\n"
                return
    finally:
        generation.cancel()


# -- embeddings -------------------------------------------------------------------------------------------


async def _embed(request: Request, route: str, key: str) -> tuple[ModelRef, list[Any], int, float, float]:
    arrived = time.perf_counter()
    plane: DataPlane = request.app.state.plane
    data = await _body(request, plane)
    check_fields(data, route)
    check_options(data.get("options") or {})  # accepted, and asking nothing of an embedding
    texts = embed_inputs(data.get(key), key)
    dimensions = data.get("dimensions")
    if dimensions is not None and (isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1):
        raise BadInput(f"'dimensions' must be a whole number ≥ 1, not {dimensions!r}.")
    ref, loaded_in = await _model(data, plane, request)
    if plane.get(ref.name).info.task == "embed-image":
        raise BadInput(f"model '{ref.name}' embeds images; this route embeds text.",
                       hint="send images to POST /v1/embeddings as data URLs.")  # fmt: skip
    if data.get("truncate") is not False:
        texts = _truncated(plane, ref.name, texts)
    vectors, tokens = await plane.embed(ref.name, texts, dimensions)
    return ref, vectors, tokens, arrived, loaded_in


def _truncated(plane: DataPlane, name: str, texts: list[str]) -> list[str]:
    """A GGUF encoder's texts cut to its context (Ollama's truncate, its default); with truncate false a
    longer text is refused by the engine. An ONNX encoder reads a long text in windows, truncated or not."""
    from lanai.dataplane.models import LanguageModel

    model = plane.get(name)
    if not isinstance(model, LanguageModel):
        return texts
    backend, out = model.backend, []
    limit = int(backend.n_ctx)
    for text in texts:
        tokens, keep = backend.tokenize(text), limit
        while len(tokens) > limit:  # a cut text may tokenise a little differently: cut until it fits
            text = b"".join(backend.piece(t) for t in tokens[:keep]).decode("utf-8", "ignore")
            tokens, keep = backend.tokenize(text), keep - 1
        out.append(text)
    return out


@_ollama_errors
async def embed(request: Request) -> Response:
    ref, vectors, tokens, arrived, loaded_in = await _embed(request, "POST /api/embed", "input")
    ns = max(1, int((time.perf_counter() - arrived) * 1e9))
    body = OllamaEmbedResponse(ref.given, tuple(vectors), ns, max(1, int(loaded_in * 1e9)), tokens)
    return JSONResponse(body.to_dict())


@_ollama_errors
async def embeddings(request: Request) -> Response:
    _, vectors, _, _, _ = await _embed(request, "POST /api/embeddings", "prompt")
    return JSONResponse(OllamaEmbeddingsResponse(vectors[0]).to_dict())


# -- the store's models -------------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _gguf(path: Path, digest: str, arrays: bool = False) -> GgufInfo | None:
    """A stored GGUF's header (content-addressed: a digest's header never changes)."""
    try:
        return read_gguf(path, arrays=arrays)
    except StoreError:
        return None


async def _describe(plane: DataPlane, manifest: Any, *, arrays: bool = False) -> tuple[OllamaDetails, GgufInfo | None]:
    info = None
    if manifest.backend == "llamacpp":
        path = plane.store.file_path(manifest, "model")
        info = await asyncio.to_thread(_gguf, path, manifest.files["model"].sha256, arrays)
    if info is None:
        return OllamaDetails("", manifest.backend, "", None, "", ""), None
    arch = info.architecture
    return OllamaDetails(
        "", "gguf", arch, (arch,) if arch else None, human_count(info.parameters), info.file_type
    ), info


def _size(manifest: Any) -> int:
    return sum(ref.size for ref in manifest.files.values())


def _allowed(request: Request, name: str) -> bool:
    return caller(request).allows_model(name)


async def tags(request: Request) -> Response:
    plane: DataPlane = request.app.state.plane
    models = []
    for summary in plane.store.list():
        if summary.active is None or summary.task not in _TEXT_TASKS or not _allowed(request, summary.name):
            continue
        try:
            manifest = plane.store.manifest(summary.name)
            details, _ = await _describe(plane, manifest)
        except LanaiError:  # a damaged model: `lanai models list` says what is wrong with it
            continue
        name = f"{summary.name}:latest"
        models.append(OllamaModel(name, name, manifest.created, _size(manifest), manifest.files["model"].sha256,
                                  details))  # fmt: skip
    return JSONResponse(OllamaTags(tuple(models)).to_dict())


async def ps(request: Request) -> Response:
    plane: DataPlane = request.app.state.plane
    running = []
    for name, model in list(plane.models.items()):
        if model.info.task not in _TEXT_TASKS or not _allowed(request, name):
            continue
        manifest = model.manifest
        details, _ = await _describe(plane, manifest)
        status = plane.residency.status(name)
        expires = status["expires_at"]
        backend = getattr(model, "backend", None)
        context = int(getattr(backend, "n_ctx", 0) or 0)
        running.append(OllamaRunning(f"{name}:latest", f"{name}:latest", status["memory_bytes"] or _size(manifest),
                                     manifest.files["model"].sha256, details,
                                     rfc3339(expires if expires is not None and expires < _FOREVER else _FOREVER),
                                     0, context))  # fmt: skip
    return JSONResponse(OllamaProcesses(tuple(running)).to_dict())


@_ollama_errors
async def show(request: Request) -> Response:
    plane: DataPlane = request.app.state.plane
    data = await _body(request, plane)
    ref = parse_model(data.get("model"))
    request.scope["lanai.model"] = ref.name
    allow_model(request, ref.name)
    summary = next((s for s in plane.store.list() if s.name == ref.name), None)
    if summary is None or summary.task not in _TEXT_TASKS or summary.active is None or not ref.known:
        raise _not_found(ref, plane)
    version = summary.active if ref.version is None else int(ref.version)
    if version not in summary.versions:
        raise _not_found(ref, plane, f": {ref.name} has versions {', '.join(map(str, summary.versions))}")
    manifest = plane.store.manifest(ref.name, version)
    details, info = await _describe(plane, manifest, arrays=data.get("verbose") is True)
    metadata = dict(info.metadata) if info is not None else {}
    template = str(metadata.pop("tokenizer.chat_template", "") or "")
    context = int(manifest.backend_options.get("n_ctx", 2048)) if manifest.backend == "llamacpp" else 0
    parameters = f"num_ctx {context}" if context else ""
    capabilities = {"chat": ("completion", "tools"), "completion": ("completion",), "embed": ("embedding",)}
    modelfile = (f"# lanai model {ref.name}, version {version} ({manifest.backend}, task {manifest.task})\n"
                 f"FROM {ref.name}:latest\n" + (f"PARAMETER {parameters}\n" if parameters else ""))  # fmt: skip
    body = OllamaShow(modelfile, parameters, template, details, metadata, capabilities[manifest.task], manifest.created)
    return JSONResponse(body.to_dict())


async def version(request: Request) -> Response:
    return JSONResponse(OllamaVersion(OLLAMA_VERSION, lanai.__version__).to_dict())


_HOW_TO_ADD = (
    "add a model on the box with lanai models add FILE.gguf --name NAME --task chat (or --task embed), or bring "
    "one from an OCI registry with lanai pull / lanai follow; GET /api/tags then lists it."
)
_NOT_HERE = {
    "/api/pull": "lanai does not pull models from Ollama's library.",
    "/api/push": "lanai does not push models to Ollama's library (lanai push publishes to an OCI registry).",
    "/api/create": "lanai does not build models from Modelfiles.",
    "/api/copy": "lanai does not copy models over this API.",
    "/api/delete": "lanai does not delete models over this API (on the box: lanai models remove NAME).",
}


async def not_here(request: Request) -> Response:
    """Ollama's model management, which a lanai box does another way: a 400 that says which."""
    return error_response(400, f"{_NOT_HERE[request.url.path]} Hint: {_HOW_TO_ADD}", kind="BadInput")


def routes() -> list[Route]:
    return [
        Route("/api/chat", chat, methods=["POST"]),
        Route("/api/generate", generate, methods=["POST"]),
        Route("/api/embed", embed, methods=["POST"]),
        Route("/api/embeddings", embeddings, methods=["POST"]),
        Route("/api/tags", tags, methods=["GET"]),
        Route("/api/show", show, methods=["POST"]),
        Route("/api/ps", ps, methods=["GET"]),
        Route("/api/version", version, methods=["GET"]),
        *(Route(path, not_here, methods=["POST"]) for path in ("/api/pull", "/api/push", "/api/create", "/api/copy")),
        Route("/api/delete", not_here, methods=["DELETE"]),
    ]
