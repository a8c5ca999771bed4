"""Open Inference Protocol v2 REST endpoints, with the binary tensor and model repository extensions."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lanai.dataplane import DataPlane
from lanai.errors import BadInput, ModelNotFound
from lanai.http.auth import allow_model, caller
from lanai.http.body import json_object, read_body
from lanai.http.json_response import JSONResponse
from lanai.protocol.infer import encode_infer_response, parse_infer_request, parse_raw_request
from lanai.protocol.v2 import (
    LoadResult,
    ModelReady,
    RepositoryIndexRequest,
    ServerLive,
    ServerReady,
    UnloadResult,
    refuse_load_parameters,
)
from lanai.protocol.wire import WireError

__all__ = ["routes"]

HEADER_LENGTH = "inference-header-content-length"


def _plane(request: Request) -> DataPlane:
    return request.app.state.plane  # type: ignore[no-any-return]


async def server_metadata(request: Request) -> Response:
    return JSONResponse(_plane(request).server_metadata().to_dict())


async def live(request: Request) -> Response:
    return JSONResponse(ServerLive(_plane(request).live()).to_dict())


async def ready(request: Request) -> Response:
    is_ready = _plane(request).ready()
    return JSONResponse(ServerReady(is_ready).to_dict(), 200 if is_ready else 503)


def _model_name(request: Request) -> tuple[str, str | None]:
    name = request.path_params["model"]
    request.scope["lanai.model"] = name
    allow_model(request, name)
    return name, request.path_params.get("version")


async def model_metadata(request: Request) -> Response:
    return JSONResponse(_plane(request).model_metadata(*_model_name(request)).to_dict())


async def model_ready(request: Request) -> Response:
    name, version = _model_name(request)
    plane = _plane(request)
    if not plane.model_ready(name, version):
        plane.get(name, version)  # says why: not loaded, another version, or the server is starting
    return JSONResponse(ModelReady(name, True).to_dict())


def _header_length(request: Request) -> int | None:
    value = request.headers.get(HEADER_LENGTH)
    if value is None:
        return None
    if not (value.strip().isascii() and value.strip().isdigit()):  # "²".isdigit(), but int("²") fails
        raise BadInput(f"Inference-Header-Content-Length {value!r} is not a number.")
    return int(value)


async def infer(request: Request) -> Response:
    plane = _plane(request)
    name, version = _model_name(request)
    await plane.ensure(name)  # a model that loads on demand: now, as its shapes read the body
    model = plane.tensor_model(name, version)  # an unknown model is reported before the body is read
    plane.check_room(name, version)  # and so is a full queue
    body = await read_body(request, plane.settings.max_body_bytes)
    header_length = _header_length(request)
    if header_length == 0:
        if len(model.info.inputs) != 1:
            raise BadInput(f"model {model.name!r} has {len(model.info.inputs)} inputs; a raw body can feed only one.")
        infer_request, binary, all_binary = parse_raw_request(body, model.info.inputs[0]), set[str](), True
    else:
        infer_request, binary, all_binary = parse_infer_request(body, header_length)
    response = await plane.infer(model.name, infer_request, model.version)
    payload, json_length = encode_infer_response(response, binary, all_binary)
    if json_length is None:
        return Response(payload, media_type="application/json")
    return Response(
        payload, media_type="application/octet-stream", headers={"Inference-Header-Content-Length": str(json_length)}
    )


async def repository_index(request: Request) -> Response:
    plane = _plane(request)
    body = await read_body(request, plane.settings.max_body_bytes)
    try:
        wanted = RepositoryIndexRequest.from_dict(json_object(body)) if body.strip() else RepositoryIndexRequest()
    except WireError as exc:
        raise BadInput(f"the index request is malformed: {exc}", hint='send {"ready": true} or nothing.') from None
    who = caller(request)
    entries = [e.to_dict() for e in plane.repository_index(wanted.ready) if who.allows_model(e.name)]
    return JSONResponse(entries)


async def repository_load(request: Request) -> Response:
    name = request.path_params["model"]
    plane = _plane(request)
    body = await read_body(request, plane.settings.max_body_bytes)
    parameters = json_object(body).get("parameters") if body.strip() else None
    if parameters is not None and not isinstance(parameters, dict):
        raise BadInput("'parameters' must be an object.")
    refuse_load_parameters(name, parameters or {})
    try:
        await _plane(request).load(name)
    except ModelNotFound as exc:
        if exc.hint is None:
            exc.hint = "POST /v2/repository/index lists the models in the store."
        raise
    return JSONResponse(LoadResult(name, True).to_dict())


async def repository_unload(request: Request) -> Response:
    name = request.path_params["model"]
    await _plane(request).unload(name)
    return JSONResponse(UnloadResult(name, True).to_dict())


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
