"""The OpenAPI 3.1 document of the HTTP API, served at /openapi.json (Swagger UI shows it at /docs:
``lanai.http.console``).

The bodies' schemas come from their wire values (``protocol.wire.schema``) and the task endpoints from
the task registry, so the document cannot drift from what the handlers send; the rest of the bodies are
in ``openapi_schemas``. The paths are written here so that client generators such as NSwag and Kiota get
stable operation ids. A unit test checks that every route of the app is in the document and every
operation in the document is routed, and validates served bodies against the schemas.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import lanai
from lanai.http.auth import access_of
from lanai.http.openapi_admin import ADMIN_BODIES, admin_paths
from lanai.http.openapi_admin import TAG as ADMIN_TAG
from lanai.http.openapi_schemas import SCHEMAS, ref
from lanai.protocol import anthropic, health, ollama, openai, pairing, v2
from lanai.protocol.pipelines import PipelineList, PipelineResult
from lanai.protocol.status import StatusReport
from lanai.protocol.wire import Wire, schema
from lanai.security.guard import Access
from lanai.tasks import TASKS, Task

__all__ = ["openapi_document", "routes"]

Doc = dict[str, Any]

_TAGS = {
    "tasks": "Ready-made tasks for apps: send an image, get labels.",
    "inference": "Open Inference Protocol v2 (KServe and Triton clients work), with the binary tensor extension.",
    "repository": "Load and unload models (Triton's model repository extension).",
    "openai": "OpenAI-compatible API for language models (GGUF on llama.cpp): the openai clients work unchanged.",
    "anthropic": "Anthropic's Messages API over the same language models: the anthropic clients work unchanged.",
    "ollama": "Ollama's native API over the same language models and text encoders: the ollama clients work unchanged.",
    "health": "Liveness and readiness, for people and load balancers.",
    "pairing": "Pair a device with a one-time code (lanai pair): the device's two steps, and the admin's side.",
    "operations": "Metrics and this API's description.",
    "console": "The box's web console for a browser (its pages are public; what they show obeys the API's rules).",
    ADMIN_TAG[0]: ADMIN_TAG[1],
}
_BINARY = {"type": "string", "format": "binary"}
_HEADER_LENGTH = "Inference-Header-Content-Length"
_ERRORS = {400: "BadRequest", 404: "NotFound", 413: "PayloadTooLarge", 503: "Unavailable"}


def _json(description: str, schema: Doc) -> Doc:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _text(description: str, media_type: str) -> Doc:
    return {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}


def _param(name: str) -> Doc:
    return {"$ref": f"#/components/parameters/{name}"}


def _op(
    op_id: str,
    tag: str,
    summary: str,
    ok: Doc,
    *,
    errors: tuple[int, ...] = (),
    also: Doc | None = None,
    status: int = 200,
    **fields: Any,
) -> Doc:
    """One operation: ``status`` (200) is ``ok``; ``errors`` are the shared error responses; ``also`` adds
    others."""
    responses = {str(status): ok, **{str(s): {"$ref": f"#/components/responses/{_ERRORS[s]}"} for s in errors}}
    responses.update(also or {})
    return {"operationId": op_id, "tags": [tag], "summary": summary, **fields, "responses": responses}


def _path(name: str, description: str) -> Doc:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": {"type": "string"}}


def _model_params(versioned: bool) -> list[Doc]:
    return [_param("Model"), _param("Version")] if versioned else [_param("Model")]


# -- tasks ---------------------------------------------------------------------------------------------

_IMAGE_BODY = {
    "required": True,
    "description": "The image (JPEG, PNG, WebP, …) as form field 'file', or as the whole body.",
    "content": {
        "multipart/form-data": {
            "schema": ref("ImageUpload"),
            "encoding": {"file": {"contentType": "image/*, application/octet-stream"}},
        },
        "image/*": {"schema": _BINARY},
        "application/octet-stream": {"schema": _BINARY},
    },
}
_TEXT_BODY = {
    "required": True,
    "description": 'The text: {"text": "..."} as JSON, or the raw text as UTF-8.',
    "content": {
        "application/json": {"schema": ref("TextInput")},
        "text/plain": {"schema": {"type": "string"}},
    },
}
_DEFAULT_MODEL = "Uses the default model (the setting default_model, else the only or the first classifier)."


def _task_op(task: Task, op_id: str, summary: str, params: list[Doc], description: str | None = None) -> Doc:
    assert task.result is not None
    ok = _json(f"The {task.name} result.", ref(task.result.__name__))
    if getattr(task, "render", None) is not None:  # draw=true: the image with the result drawn on it
        ok = {"description": f"The {task.name} result; with draw=true, the image with it drawn, as JPEG.",
              "content": {**ok["content"], "image/jpeg": {"schema": _BINARY}}}  # fmt: skip
    query = [
        {
            "name": name,
            "in": "query",
            "required": False,
            **({"description": prop["description"]} if "description" in prop else {}),
            "schema": {k: v for k, v in prop.items() if k != "description"},
        }
        for name, prop in schema(task.params)["properties"].items()
    ]
    extra: Doc = {"description": description} if description else {}
    body = _IMAGE_BODY if task.accepts == "image" else _TEXT_BODY
    return {"post": _op(op_id, "tasks", summary, ok, errors=(400, 404, 413, 503), **extra,
                        parameters=[*params, *query], requestBody=body)}  # fmt: skip


def _task_paths() -> Doc:
    paths: Doc = {}
    for task in TASKS.values():
        if not task.routed:
            continue
        op = task.name.title().replace("-", "").replace("_", "")
        paths[f"/v1/models/{{model}}/{task.name}"] = _task_op(task, op, task.summary, _model_params(False))
        paths[f"/v1/models/{{model}}/versions/{{version}}/{task.name}"] = _task_op(
            task, f"{op}Version", f"{task.summary} with one version of a model", _model_params(True)
        )
    classify = TASKS["classify"]
    paths["/v1/infer"] = _task_op(
        classify, "ClassifyDefault", "Classify an image with the default model", [], _DEFAULT_MODEL
    )
    paths["/predict"] = _task_op(
        classify, "Predict", "Classify an image with the default model (alias)", [], _DEFAULT_MODEL
    )
    paths["/v1/pipelines"] = {
        "get": _op(
            "ListPipelines",
            "tasks",
            "The pipelines in the store",
            _json("Pipelines, and files that could not be read.", ref("PipelineList")),
        )
    }
    paths["/v1/pipelines/{pipeline}"] = {
        "post": _op(
            "RunPipeline",
            "tasks",
            "Run an image through a pipeline of models",
            _json("Each step's result; status partial when a later step failed.", ref("PipelineResult")),
            errors=(400, 404, 413, 503),
            requestBody=_IMAGE_BODY,
            description="The first step takes the image; later steps prompt language models with earlier results.",
            parameters=[{"name": "pipeline", "in": "path", "required": True, "schema": {"type": "string"}}],
        )
    }
    return paths  # fmt: skip


# -- DeepStack-compatible ------------------------------------------------------------------------------

_DEEPSTACK_SCHEMAS: Doc = {
    "DeepStackUpload": {
        "type": "object",
        "description": "The image, and how sure a detection must be.",
        "properties": {
            "image": {**_BINARY, "description": "The image (JPEG, PNG, WebP, …)."},
            "min_confidence": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.4,
                               "description": "Leave out detections below this confidence."},
        },
        "required": ["image"],
    },
    "DeepStackPrediction": {
        "type": "object",
        "description": "One detection, in the original image's whole pixels.",
        "properties": {
            "label": {"type": "string"}, "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            **{k: {"type": "integer"} for k in ("x_min", "y_min", "x_max", "y_max")},
        },
        "required": ["label", "confidence", "x_min", "y_min", "x_max", "y_max"],
    },
    "DeepStackAnswer": {
        "type": "object",
        "description": "DeepStack's answer (count, inferenceMs and processMs as CodeProject.AI adds them).",
        "properties": {
            # always true; no "const": openapi-generator's C# client turns a boolean const into an int
            "success": {"type": "boolean", "description": "Always true here."},
            "predictions": {"type": "array", "items": ref("DeepStackPrediction")},
            "count": {"type": "integer", "minimum": 0},
            "inferenceMs": {"type": "integer", "minimum": 0},
            "processMs": {"type": "integer", "minimum": 0},
        },
        "required": ["success", "predictions"],
    },
    "DeepStackError": {
        "type": "object",
        "description": "DeepStack's failure: the message ends with a hint.",
        "properties": {"success": {"type": "boolean", "description": "Always false here."}, "error": {"type": "string"},
                       "code": {"type": "integer"}},
        "required": ["success", "error"],
    },
}  # fmt: skip


def _deepstack_paths() -> Doc:
    body = {
        "required": True,
        "description": "A multipart form: the image as field 'image'; min_confidence as a form field (or query).",
        "content": {"multipart/form-data": {"schema": ref("DeepStackUpload")}},
    }
    error = {"content": {"application/json": {"schema": ref("DeepStackError")}}}
    errors = {str(s): {"description": d, **error} for s, d in (
        (400, "Not an image, or a bad min_confidence."), (404, "No detect model is loaded for this endpoint."),
        (413, "The body or the image is larger than the server allows."),
        (503, "The model's queue is full, or the server is starting or draining."))}  # fmt: skip
    answer = _json("What was found.", ref("DeepStackAnswer"))
    which = ("Answered by the model in the setting deepstack_{0}_model; unset, {1}. Refusals by the access "
             "checks (401, 403, 429) have lanai's error body.")  # fmt: skip
    return {
        "/v1/vision/detection": {"post": {**_op(
            "DeepStackDetection", "tasks", "Detect objects (DeepStack-compatible)", answer, requestBody=body,
            description=which.format("detection", "the only detect model, else the first that is not a face "
                                                  "detector")), "responses": {"200": answer, **errors}}},
        "/v1/vision/face": {"post": {**_op(
            "DeepStackFace", "tasks", "Detect faces (DeepStack-compatible)", answer, requestBody=body,
            description=which.format("face", "the first face detector (RetinaFace outputs)")),
            "responses": {"200": answer, **errors}}},
    }  # fmt: skip


# -- Open Inference Protocol v2 ------------------------------------------------------------------------

_INFER_BODY = {
    "required": True,
    "description": "An InferRequest as JSON, or as application/octet-stream (binary tensor extension): the JSON "
    f"({_HEADER_LENGTH} bytes), then each binary input's raw bytes, little-endian and row-major (a BYTES element is "
    f"a 4-byte length and its bytes). With {_HEADER_LENGTH}: 0 the body is the raw bytes of the model's only input.",
    "content": {"application/json": {"schema": ref("InferRequest")}, "application/octet-stream": {"schema": _BINARY}},
}
_INFER_OK = {
    "description": "The outputs as JSON; with binary outputs, the JSON header followed by the raw tensors.",
    "headers": {
        _HEADER_LENGTH: {
            "description": "Bytes of JSON before the binary tensors; sent only with application/octet-stream.",
            "schema": {"type": "integer", "minimum": 1},
        }
    },
    "content": {"application/json": {"schema": ref("InferResponse")}, "application/octet-stream": {"schema": _BINARY}},
}


def _model_paths(versioned: bool) -> Doc:
    """Metadata, readiness and inference of a model, or (``versioned``) of one version of it."""
    base, v = ("/v2/models/{model}/versions/{version}", "Version") if versioned else ("/v2/models/{model}", "")
    params = _model_params(versioned)
    of = " of one version of a model" if versioned else " of a model"
    return {
        base: {"get": _op(f"Model{v}Metadata", "inference", "Metadata" + of,
                          _json("The model's inputs and outputs.", ref("ModelMetadata")),
                          errors=(404, 503), parameters=params)},
        base + "/ready": {"get": _op(f"Model{v}Ready", "inference", "Readiness" + of,
                                    _json("The model is loaded (else 404).", ref("ModelReady")),
                                    errors=(404, 503), parameters=params)},
        base + "/infer": {"post": _op(f"Model{v}Infer", "inference", "Run inference" + of.replace(" of", " on", 1),
                                      _INFER_OK, errors=(400, 404, 413, 503), requestBody=_INFER_BODY,
                                      parameters=[*params, _param("InferenceHeaderContentLength")])},
    }  # fmt: skip


def _v2_paths() -> Doc:
    ready = _json("Whether the server takes requests.", ref("ServerReady"))
    return {
        "/v2": {"get": _op("ServerMetadata", "inference", "Server metadata",
                           _json("Name, version and protocol extensions.", ref("ServerMetadata")))},
        "/v2/health/live": {"get": _op("ServerLive", "health", "Server liveness",
                                       _json("The server process answers.", ref("ServerLive")))},
        "/v2/health/ready": {"get": _op("ServerReady", "health", "Server readiness", ready,
                                        also={"503": {**ready, "description": "Starting or draining."}})},
        **_model_paths(versioned=False),
        **_model_paths(versioned=True),
    }  # fmt: skip


def _repository_paths() -> Doc:
    index = _json("Every model in the store, loaded or not.", {"type": "array", "items": ref("RepositoryEntry")})
    index_body = {"required": False, "content": {"application/json": {"schema": ref("RepositoryIndexRequest")}}}
    load = (
        "Loads the model's active version; a loaded model keeps serving until the new one is ready. A body "
        "with load parameters (config, files) is refused: the store says what to load."
    )
    unload = "Lets queued requests finish, then frees the model (unload_dependents: it has none)."
    return {
        "/v2/repository/index": {"post": _op("RepositoryIndex", "repository", "List the models in the store", index,
                                             errors=(400, 413), requestBody=index_body)},
        "/v2/repository/models/{model}/load": {"post": _op(
            "RepositoryModelLoad", "repository", "Load or reload a model",
            _json("Loaded.", ref("LoadResult")),
            errors=(400, 404), description=load, parameters=_model_params(False))},
        "/v2/repository/models/{model}/unload": {"post": _op(
            "RepositoryModelUnload", "repository", "Unload a model", _json("Unloaded.", ref("UnloadResult")),
            errors=(404,), description=unload, parameters=_model_params(False))},
    }  # fmt: skip


# -- OpenAI-compatible ---------------------------------------------------------------------------------


def _openai_paths() -> Doc:
    def body(schema: str) -> Doc:
        return {"required": True, "content": {"application/json": {"schema": ref(schema)}}}

    error = {"content": {"application/json": {"schema": ref("OpenAIError")}}}
    errors = {
        str(s): {"description": d, **error}
        for s, d in (
            (400, "The request is malformed, or the prompt is longer than the model's context."),
            (404, "No such model."),
            (413, "The body is larger than the server allows."),
            (503, "The model's queue is full, or the server is starting or draining (Retry-After)."),
        )
    }
    stream = {
        "text/event-stream": {
            "schema": {
                "type": "string",
                "description": "data: <chunk JSON> events, then "
                "data: [DONE]; an error after the start is an event with 'error'.",
            }
        }
    }

    def answer(schema: str, text: str) -> Doc:
        return {"description": text, "content": {"application/json": {"schema": ref(schema)}, **stream}}

    return {
        "/v1/models": {"get": _op("ListModels", "openai", "The loaded models, OpenAI-style",
                                  _json("Every loaded model.", ref("ModelList")))},
        "/v1/chat/completions": {"post": {**_op("CreateChatCompletion", "openai", "Answer a conversation",
                                                answer("ChatCompletion", "The answer, whole or streamed."),
                                                requestBody=body("ChatCompletionRequest")), "responses": {
            "200": answer("ChatCompletion", "The answer, whole or streamed."), **errors}}},
        "/v1/completions": {"post": {**_op("CreateCompletion", "openai", "Continue a text",
                                           answer("Completion", "The continuation, whole or streamed."),
                                           requestBody=body("CompletionRequest")), "responses": {
            "200": answer("Completion", "The continuation, whole or streamed."), **errors}}},
        "/v1/embeddings": {"post": {**_op("CreateEmbeddings", "openai", "Embed texts",
                                          _json("One vector per input.", ref("EmbeddingList")),
                                          requestBody=body("EmbeddingRequest")), "responses": {
            "200": _json("One vector per input.", ref("EmbeddingList")), **errors}}},
    }  # fmt: skip


# -- Anthropic Messages API ----------------------------------------------------------------------------


def _anthropic_paths() -> Doc:
    def body(schema: str) -> Doc:
        return {"required": True, "content": {"application/json": {"schema": ref(schema)}}}

    error = {"content": {"application/json": {"schema": ref("AnthropicError")}}}
    retry = {"Retry-After": {"description": "Seconds to wait before retrying.",
                             "schema": {"type": "integer", "minimum": 1}}}  # fmt: skip
    errors = {
        str(s): {"description": d, **error, **({"headers": retry} if s in (429, 503) else {})}
        for s, d in (
            (400, "invalid_request_error: the request is malformed, asks for what lanai refuses (images, "
                  "documents, thinking, server tools), or the prompt is longer than the model's context."),
            (401, "authentication_error: no key, or a key that is unknown, revoked or expired."),
            (403, "permission_error: this address, or the key's role or models, may not use this."),
            (404, "not_found_error: no such model."),
            (413, "request_too_large: the body is larger than the server allows."),
            (429, "rate_limit_error: the key's rate limit, or too many bad keys from this address."),
            (503, "overloaded_error: the model's queue is full, or the server is starting or draining."),
        )
    }  # fmt: skip
    stream = {
        "text/event-stream": {
            "schema": {
                "type": "string",
                "description": "event: <name> / data: <JSON> events: message_start, ping, content_block_start, "
                "content_block_delta (text_delta, input_json_delta), content_block_stop, message_delta, "
                "message_stop; an error after the start is an error event.",
            }
        }
    }
    answer = {"description": "The answer, whole or streamed.",
              "content": {"application/json": {"schema": ref("AnthropicMessage")}, **stream}}  # fmt: skip
    count = _json("The prompt's tokens.", ref("TokenCount"))
    return {
        "/v1/messages": {"post": {**_op("CreateMessage", "anthropic", "Answer a conversation, Anthropic-style",
                                        answer, requestBody=body("MessagesRequest")),
                                  "responses": {"200": answer, **errors}}},
        "/v1/messages/count_tokens": {"post": {**_op("CountMessageTokens", "anthropic", "Count a conversation's "
                                                     "prompt tokens", count, requestBody=body("CountTokensRequest")),
                                               "responses": {"200": count, **errors}}},
    }  # fmt: skip


# -- Ollama's native API -------------------------------------------------------------------------------


def _ollama_paths() -> Doc:
    def body(schema: str) -> Doc:
        return {"required": True, "content": {"application/json": {"schema": ref(schema)}}}

    def lines(schema: str, text: str) -> Doc:
        ndjson = {"schema": {"type": "string", "description": f"One {schema} per line (JSON); the last has done: "
                                                                 "true and the timings; an error after the start is "
                                                                 'a line {"error": "…"}.'}}  # fmt: skip
        return {"description": text, "content": {"application/json": {"schema": ref(schema)},
                                                 "application/x-ndjson": ndjson}}  # fmt: skip

    def post(op_id: str, summary: str, ok: Doc, request: str, errors: tuple[int, ...] = (400, 404, 413, 503)) -> Doc:
        return {"post": _op(op_id, "ollama", summary, ok, errors=errors, requestBody=body(request))}

    def get(op_id: str, summary: str, schema: str, text: str) -> Doc:
        return {"get": _op(op_id, "ollama", summary, _json(text, ref(schema)))}

    elsewhere = {"400": {"$ref": "#/components/responses/BadRequest"}}
    not_here = {
        "/api/pull": ("OllamaPull", "Pull from Ollama's library: refused, with how to add a model to lanai"),
        "/api/push": ("OllamaPush", "Push to Ollama's library: refused, with how lanai publishes models"),
        "/api/create": ("OllamaCreate", "Create from a Modelfile: refused, with how to add a model to lanai"),
        "/api/copy": ("OllamaCopy", "Copy a model: refused, with how to add a model to lanai"),
    }
    refused = {path: {"post": {"operationId": op_id, "tags": ["ollama"], "summary": summary,
                               "requestBody": body("OllamaModelRequest"), "responses": dict(elsewhere)}}
               for path, (op_id, summary) in not_here.items()}  # fmt: skip
    refused["/api/delete"] = {"delete": {"operationId": "OllamaDelete", "tags": ["ollama"], "requestBody":
                                         body("OllamaModelRequest"), "summary": "Delete a model: refused, with how "
                                         "to remove one on the box", "responses": dict(elsewhere)}}  # fmt: skip
    return {
        "/api/chat": post("OllamaChat", "Answer a conversation, Ollama-style",
                          lines("OllamaChatResponse", "The answer: NDJSON lines, or one object with stream false."),
                          "OllamaChatRequest"),
        "/api/generate": post("OllamaGenerate", "Continue a prompt, Ollama-style",
                              lines("OllamaGenerateResponse", "The continuation: NDJSON lines, or one object with "
                                                              "stream false."), "OllamaGenerateRequest"),
        "/api/embed": post("OllamaEmbed", "Embed texts, Ollama-style",
                           _json("One vector per input.", ref("OllamaEmbedResponse")), "OllamaEmbedRequest"),
        "/api/embeddings": post("OllamaEmbeddings", "Embed a text (Ollama's older route)",
                                _json("The vector.", ref("OllamaEmbeddingsResponse")), "OllamaEmbeddingsRequest"),
        "/api/show": post("OllamaShow", "Describe a model", _json("The model.", ref("OllamaShow")),
                          "OllamaModelRequest", errors=(400, 404, 413)),
        "/api/tags": get("OllamaTags", "The language models and text encoders of the store", "OllamaTags",
                         "The models the caller may use."),
        "/api/ps": get("OllamaPs", "The loaded language models and text encoders", "OllamaProcesses",
                       "The loaded models the caller may use."),
        "/api/version": get("OllamaVersion", "The Ollama API level lanai speaks", "OllamaVersion", "The versions."),
        **refused,
    }  # fmt: skip


# -- pairing -------------------------------------------------------------------------------------------


def _pairing_paths() -> Doc:
    def body(schema: str, required: bool = True) -> Doc:
        return {"required": required, "content": {"application/json": {"schema": ref(schema)}}}

    device = (
        "Open to the networks the box serves, even under mTLS without a certificate: the one-time code is "
        "the credential (403 once its tries are used up)."
    )
    return {
        "/v1/pair": {"post": _op("StartPairing", "pairing", "A device's first pairing message",
                                 _json("The box's SPAKE2 message and the session.", ref("PairStarted")),
                                 errors=(400, 413, 503), description=device, requestBody=body("PairStart"))},
        "/v1/pair/confirm": {"post": _op("ConfirmPairing", "pairing", "A device's proof that it holds the code",
                                         _json("The box's proof and the sealed grant.", ref("PairConfirmed")),
                                         errors=(400, 413, 503), description=device,
                                         requestBody=body("PairConfirm"))},
        "/v1/admin/pairing": {
            "post": _op("OpenPairing", "pairing", "Open a pairing and show its one-time code",
                        _json("The code, shown only here.", ref("PairingOfferInfo")), status=201,
                        errors=(400, 413, 503), requestBody=body("PairingRequest", required=False),
                        description="An empty body: an infer key for every model, a code valid for 5 minutes."),
            "get": _op("GetPairingStatus", "pairing", "The open pairing, and the devices paired",
                       _json("Whether a code waits, and who paired.", ref("PairingStatusInfo")), errors=(503,)),
            "delete": _op("ClosePairing", "pairing", "Close the open pairing", {"description": "Closed."},
                          status=204, errors=(503,)),
        },
    }  # fmt: skip


# -- operations ----------------------------------------------------------------------------------------


def _ops_paths() -> Doc:
    health = _json(
        "healthy, or degraded when a model failed to load or none is loaded: the whole report for an admin, "
        "the state and why for anyone else.",
        ref("HealthAnswer"),
    )
    ready = _json("ready: send it work (with the weight and maxconn its agent check gives).", ref("Readiness"))
    return {
        "/health": {"get": _op("Health", "health", "Server, models and device status", health,
                               also={"503": {**health, "description": "Starting or draining."}})},
        "/health/live": {"get": _op("Live", "health", "Liveness: the process answers",
                                    _json("Always, while the process runs.", ref("ServerLive")))},
        "/health/ready": {"get": _op("Ready", "health", "Readiness for a load balancer", ready,
                                     also={"503": {**ready, "description": "Loading, draining or degraded."}})},
        "/v1/admin/drain": {
            "get": _op("GetDrain", "operations", "The box's readiness, as draining sees it", ready),
            "post": _op("Drain", "operations", "Take the box out of the load balancer's rotation", ready),
            "delete": _op("Undrain", "operations", "Put the box back in rotation", ready),
        },
        "/v1/status": {"get": _op("Status", "operations", "The box and its models over the last 15 minutes",
                                  _json("The web console's page, in every state (admins only).",
                                        ref("StatusReport")))},
        "/metrics": {"get": _op("Metrics", "operations", "Prometheus metrics",
                                _text("Prometheus text format 0.0.4.", "text/plain"))},
        "/openapi.json": {"get": _op("GetOpenApiDocument", "operations", "This OpenAPI document",
                                     _json("OpenAPI 3.1.", {"type": "object"}))},
        "/docs": {"get": _op("GetDocs", "console", "This API in Swagger UI (try it out from the browser)",
                             _text("HTML.", "text/html"))},
        "/": {"get": _op("GetConsole", "console", "The console's status page", _text("HTML.", "text/html"))},
        "/ui/{page}": {"get": _op("GetConsolePage", "console", "A page of the console: status, try, models or "
                                  "security", _text("HTML.", "text/html"), errors=(404,),
                                  parameters=[_path("page", "status, try, models or security.")])},
        "/ui/assets/{name}": {"get": _op("GetConsoleFile", "console", "A file of the console (CSS, JavaScript)",
                                         _text("The file.", "text/plain"), errors=(404,),
                                         parameters=[_path("name", "The file's name.")])},
        "/ui/swagger-ui/{name}": {"get": _op("GetSwaggerUiFile", "console", "A file of Swagger UI's distribution",
                                             _text("The file.", "text/plain"), errors=(404,),
                                             parameters=[_path("name", "The file's name.")])},
    }  # fmt: skip


# -- links: where one answer names what the next call needs ---------------------------------------------

_FIRST_ENTRY = "$response.body#/0/name"
_NAME = "$response.body#/name"


def _link(target: str, description: str, **parameters: str) -> Doc:
    """A link's parameters only: a ``requestBody`` that is an object (StartPairing's session into
    ConfirmPairing's body) is not an expression, and openapi-generator refuses the document for it."""
    link: Doc = {"operationId": target, "description": description}
    if parameters:
        link["parameters"] = parameters
    return link


_LINKS: dict[str, tuple[str, Doc]] = {
    "RepositoryIndex": ("200", {
        "ModelMetadata": _link("ModelMetadata", "The first model's metadata (404 until it is loaded).",
                               model=_FIRST_ENTRY),
        "ModelReady": _link("ModelReady", "Whether the first model is loaded.", model=_FIRST_ENTRY),
        "RepositoryModelLoad": _link("RepositoryModelLoad", "Load the first model.", model=_FIRST_ENTRY),
        "RepositoryModelUnload": _link("RepositoryModelUnload", "Unload the first model.", model=_FIRST_ENTRY),
    }),
    "RepositoryModelLoad": ("200", {
        "ModelMetadata": _link("ModelMetadata", "The loaded model's metadata.", model=_NAME),
        "ModelReady": _link("ModelReady", "The loaded model is ready.", model=_NAME),
        "RepositoryModelUnload": _link("RepositoryModelUnload", "Unload it again.", model=_NAME),
    }),
    "RepositoryModelUnload": ("200", {
        "RepositoryModelLoad": _link("RepositoryModelLoad", "Load it again.", model=_NAME),
        "ModelReady": _link("ModelReady", "Unloaded: 404 until it is loaded again.", model=_NAME),
    }),
    "ModelMetadata": ("200", {
        "ModelInfer": _link("ModelInfer", "Run the model, with the inputs this metadata describes.", model=_NAME),
        "ModelVersionMetadata": _link("ModelVersionMetadata", "The same, asked of the version loaded.",
                                      model=_NAME, version="$response.body#/versions/0"),
        "ModelVersionReady": _link("ModelVersionReady", "Whether the version loaded is ready.",
                                   model=_NAME, version="$response.body#/versions/0"),
        "ModelVersionInfer": _link("ModelVersionInfer", "Run the version loaded.",
                                   model=_NAME, version="$response.body#/versions/0"),
    }),
    "ModelReady": ("200", {
        "ModelMetadata": _link("ModelMetadata", "The ready model's metadata.", model=_NAME),
    }),
    "ListModels": ("200", {
        "ModelMetadata": _link("ModelMetadata", "The first loaded model's metadata (its task is in the card).",
                               model="$response.body#/data/0/id"),
        "ModelReady": _link("ModelReady", "Whether the first loaded model is ready.",
                            model="$response.body#/data/0/id"),
    }),
    "OpenPairing": ("201", {
        "GetPairingStatus": _link("GetPairingStatus", "The pairing just opened, waiting for its device."),
        "ClosePairing": _link("ClosePairing", "Close it before a device uses the code."),
    }),
}  # fmt: skip
"""Each source operation's links, for people reading the document and for stateful fuzzers (schemathesis)."""


def _linked(paths: Doc) -> Doc:
    for operations in paths.values():
        for operation in operations.values():
            status, links = _LINKS.get(operation.get("operationId", ""), ("", {}))
            if links:
                operation["responses"][status]["links"] = links
    return paths


_HEALTH_ANSWER = {
    "description": "The whole report for an admin; the state and why for anyone else.",
    "anyOf": [ref("HealthReport"), ref("HealthStatus")],
}


def _components() -> Doc:
    path = {"in": "path", "required": True, "schema": {"type": "string"}}
    retry = {"description": "Seconds to wait before retrying.", "schema": {"type": "integer", "minimum": 1}}
    error = {"content": {"application/json": {"schema": ref("Error")}}}
    return {
        "schemas": {**SCHEMAS, **_wire_schemas(), **_DEEPSTACK_SCHEMAS, "HealthAnswer": _HEALTH_ANSWER},
        "parameters": {
            "Model": {"name": "model", **path, "description": "The model's name."},
            "Version": {"name": "version", **path, "description": "The model version; it must be the one loaded."},
            "InferenceHeaderContentLength": {
                "name": _HEADER_LENGTH, "in": "header", "required": False, "schema": {"type": "integer", "minimum": 0},
                "description": "Binary tensor extension: bytes of JSON at the start of the body; 0: a raw body.",
            },
        },
        "responses": {
            "BadRequest": {"description": "The request is malformed or does not fit the model.", **error},
            "NotFound": {"description": "No such model, or that version is not the one loaded.", **error},
            "PayloadTooLarge": {"description": "The body or the image is larger than the server allows.", **error},
            "Unavailable": {"description": "The server is starting or draining, the model's queue is full, or the "
                                           "server does not do this (pairing, outside lanai serve).",
                            "headers": {"Retry-After": retry}, **error},
            "Unauthorized": {"description": "No key, or a key that is unknown, revoked or expired; under mTLS, no "
                                            "client certificate, or a revoked one.",
                             "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}, **error},
            "Forbidden": {"description": "This address may not use the box, or the key's role or models do not "
                                         "allow this.", **error},
            "TooManyRequests": {"description": "The key's rate limit, or too many bad keys from this address.",
                                "headers": {"Retry-After": retry}, **error},
        },
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer",
                       "description": "An API key (lanai keys create) as Authorization: Bearer <key>. Inference "
                                      "needs none unless the server requires keys; admin calls from the box itself "
                                      "need none either (admin_loopback)."},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                       "description": "The same API key, in the X-API-Key header."},
            "mutualTLS": {"type": "mutualTLS",
                          "description": "A client certificate (lanai certs client, or lanai pair): its OU is its "
                                         "role, in place of a key. Under lanai serve --mtls every call needs one, "
                                         "the public health checks too; only pairing does not."},
        },
    }  # fmt: skip


_ANY_CREDENTIAL: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}, {"mutualTLS": []}]
_SECURITY = [{}, *_ANY_CREDENTIAL]
"""The document's default, which inference-level operations keep: a key or a client certificate, or
nothing unless the server requires keys (auth = "required")."""


def _secured(paths: Doc) -> Doc:
    """Each operation's security as the door enforces it (``http.auth.access_of``): none for public
    operations (``security: []``), a credential for admin ones, the document's default for the rest;
    and the refusals the door can answer with before the handler runs."""
    for template, operations in paths.items():
        for method, operation in operations.items():
            access = access_of(method.upper(), template)
            refusals = {"401": "Unauthorized", "403": "Forbidden"}
            if access is Access.PUBLIC:
                operation["security"] = []
            else:
                refusals["429"] = "TooManyRequests"
                if access is Access.ADMIN:
                    operation["security"] = [dict(requirement) for requirement in _ANY_CREDENTIAL]
            for status, name in refusals.items():
                operation["responses"].setdefault(status, {"$ref": f"#/components/responses/{name}"})
    return paths


def _wire_schemas() -> Doc:
    """The schema of every wire value a path refers to, and of the values inside them."""
    roots: list[type[Wire]] = [
        v2.ServerMetadata, v2.ServerLive, v2.ServerReady, v2.ModelReady, v2.ModelMetadata, v2.RepositoryEntry,
        v2.RepositoryIndexRequest, v2.LoadResult, v2.UnloadResult, health.HealthReport, health.HealthStatus,
        health.Readiness, StatusReport,
        PipelineList, PipelineResult,
        pairing.PairStart, pairing.PairStarted, pairing.PairConfirm, pairing.PairConfirmed, pairing.PairingRequest,
        pairing.PairingOfferInfo, pairing.PairingStatusInfo,
        openai.ModelList, openai.ChatCompletion, openai.Completion, openai.EmbeddingList,
        openai.ChatCompletionRequest, openai.CompletionRequest, openai.EmbeddingRequest,
        anthropic.AnthropicMessage, anthropic.MessagesRequest, anthropic.CountTokensRequest, anthropic.TokenCount,
        anthropic.AnthropicError,
        ollama.OllamaChatResponse, ollama.OllamaGenerateResponse, ollama.OllamaEmbedResponse,
        ollama.OllamaEmbeddingsResponse, ollama.OllamaTags, ollama.OllamaProcesses, ollama.OllamaShow,
        ollama.OllamaVersion, ollama.OllamaChatRequest, ollama.OllamaGenerateRequest, ollama.OllamaEmbedRequest,
        ollama.OllamaEmbeddingsRequest, ollama.OllamaModelRequest,
        *ADMIN_BODIES,
        *(task.result for task in TASKS.values() if task.routed and task.result is not None),
    ]  # fmt: skip
    found: Doc = {}
    while roots:
        cls = roots.pop()
        if cls.__name__ in found:
            continue
        found[cls.__name__] = schema(cls, ref)
        roots.extend(_nested(cls))
    return dict(sorted(found.items()))


def _nested(cls: type[Wire]) -> list[type[Wire]]:
    import typing

    out = []
    for kind in typing.get_type_hints(cls).values():
        stack = [kind]
        while stack:
            k = stack.pop()
            if isinstance(k, type) and issubclass(k, Wire):
                out.append(k)
            stack.extend(typing.get_args(k))
    return out


def openapi_document() -> Doc:
    """The OpenAPI 3.1 document of every route the app serves (a fresh dict on each call)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "lanai",
            "version": lanai.__version__,
            "summary": "A private, fast model server for a small box on your LAN.",
            "description": 'Errors answer with {"error": "…"}, a message that ends with a hint. '
            "503 answers carry Retry-After.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": [{"name": name, "description": text} for name, text in _TAGS.items()],
        "paths": _linked(
            _secured(
                {
                    **_task_paths(),
                    **_deepstack_paths(),
                    **_v2_paths(),
                    **_openai_paths(),
                    **_anthropic_paths(),
                    **_ollama_paths(),
                    **_repository_paths(),
                    **_pairing_paths(),
                    **_ops_paths(),
                    **admin_paths(),
                }
            )
        ),  # fmt: skip
        "components": _components(),
        "security": [dict(requirement) for requirement in _SECURITY],
    }


@cache
def _document_bytes() -> bytes:
    return json.dumps(openapi_document(), ensure_ascii=False, indent=1).encode()


async def openapi_json(request: Request) -> Response:
    return Response(_document_bytes(), media_type="application/json")


def routes() -> list[Route]:
    return [Route("/openapi.json", openapi_json, methods=["GET"])]
