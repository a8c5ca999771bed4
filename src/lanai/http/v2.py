"""Open Inference Protocol v2 REST endpoints, with the binary tensor and model repository extensions."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import lanai
from lanai.errors import BadInput
from lanai.host import Host, LoadedModel
from lanai.http.body import json_object, read_body
from lanai.http.v2_codec import encode_infer_response, parse_infer_request, parse_raw_request

__all__ = ["routes"]

EXTENSIONS = ["binary_tensor_data", "model_repository"]
HEADER_LENGTH = "inference-header-content-length"


def _host(request: Request) -> Host:
    return request.app.state.host  # type: ignore[no-any-return]


async def server_metadata(request: Request) -> Response:
    return JSONResponse({"name": "lanai", "version": lanai.__version__, "extensions": EXTENSIONS})


async def live(request: Request) -> Response:
    return JSONResponse({"live": True})


async def ready(request: Request) -> Response:
    is_ready = _host(request).ready
    return JSONResponse({"ready": is_ready}, 200 if is_ready else 503)


def _model(request: Request) -> LoadedModel:
    params = request.path_params
    model = _host(request).get(params["model"], params.get("version"))
    request.scope["lanai.model"] = model.name
    return model


async def model_metadata(request: Request) -> Response:
    model = _model(request)
    info = model.info
    return JSONResponse(
        {
            "name": info.name,
            "versions": [info.version],
            "platform": info.platform,
            "inputs": [spec.to_dict() for spec in info.inputs],
            "outputs": [spec.to_dict() for spec in info.outputs],
            "parameters": {
                "task": info.task,
                "backend": info.backend,
                "execution_provider": info.execution_provider,
                "max_batch_size": info.max_batch_size,
            },
        }
    )


async def model_ready(request: Request) -> Response:
    model = _model(request)
    return JSONResponse({"name": model.name, "ready": True})


def _header_length(request: Request) -> int | None:
    value = request.headers.get(HEADER_LENGTH)
    if value is None:
        return None
    if not value.strip().isdigit():
        raise BadInput(f"Inference-Header-Content-Length {value!r} is not a number.")
    return int(value)


async def infer(request: Request) -> Response:
    host = _host(request)
    model = _model(request)
    body = await read_body(request, host.settings.max_body_bytes)
    header_length = _header_length(request)
    if header_length == 0:
        if len(model.info.inputs) != 1:
            raise BadInput(f"model {model.name!r} has {len(model.info.inputs)} inputs; a raw body can feed only one.")
        infer_request, binary, all_binary = parse_raw_request(body, model.info.inputs[0]), set[str](), True
    else:
        infer_request, binary, all_binary = parse_infer_request(body, header_length)
    response, _ = await host.infer(model.name, infer_request, model.version)
    payload, json_length = encode_infer_response(response, binary, all_binary)
    if json_length is None:
        return Response(payload, media_type="application/json")
    return Response(
        payload, media_type="application/octet-stream", headers={"Inference-Header-Content-Length": str(json_length)}
    )


async def repository_index(request: Request) -> Response:
    host = _host(request)
    body = await read_body(request, host.settings.max_body_bytes)
    only_ready = bool(json_object(body).get("ready", False)) if body.strip() else False
    entries = []
    for summary in host.store.list():
        loaded = host.models.get(summary.name)
        if loaded is not None:
            entries.append({"name": summary.name, "version": loaded.version, "state": "READY", "reason": ""})
        elif not only_ready:
            reason = host.failed.get(summary.name, "not loaded")
            version = "" if summary.active is None else str(summary.active)
            entries.append({"name": summary.name, "version": version, "state": "UNAVAILABLE", "reason": reason})
    return JSONResponse(entries)


async def repository_load(request: Request) -> Response:
    name = request.path_params["model"]
    await _host(request).load(name)
    return JSONResponse({"name": name, "load": True})


async def repository_unload(request: Request) -> Response:
    name = request.path_params["model"]
    await _host(request).unload(name)
    return JSONResponse({"name": name, "unload": True})


def routes() -> list[Route]:
    model = "/v2/models/{model}"
    versioned = "/v2/models/{model}/versions/{version}"
    return [
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route(model, model_metadata, methods=["GET"]),
        Route(versioned, model_metadata, methods=["GET"]),
        Route(model + "/ready", model_ready, methods=["GET"]),
        Route(versioned + "/ready", model_ready, methods=["GET"]),
        Route(model + "/infer", infer, methods=["POST"]),
        Route(versioned + "/infer", infer, methods=["POST"]),
        Route("/v2/repository/index", repository_index, methods=["POST"]),
        Route("/v2/repository/models/{model}/load", repository_load, methods=["POST"]),
        Route("/v2/repository/models/{model}/unload", repository_unload, methods=["POST"]),
    ]
