"""``/v1/pipelines``: several models in a row behind one request (see ``lanai.pipelines``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lanai.dataplane import DataPlane
from lanai.http.auth import allow_model
from lanai.http.body import image_from_request
from lanai.http.json_response import JSONResponse

__all__ = ["routes"]


async def list_pipelines(request: Request) -> Response:
    plane: DataPlane = request.app.state.plane
    return JSONResponse(plane.pipelines().to_dict())


async def run(request: Request) -> Response:
    """The image (multipart field ``file`` or a raw body) through every step; 200 even when a later step
    fails: the answer then says ``"status": "partial"`` and which step failed."""
    plane: DataPlane = request.app.state.plane
    name = request.path_params["pipeline"]
    request.scope["lanai.model"] = name
    models = plane.pipeline_models(name)
    for model in models:  # a key limited to some models may run only their pipelines
        allow_model(request, model)
    if models and models[0] in plane.models:
        plane.check_room(models[0])  # the first step's queue is full: refused before the upload is read
    image = await image_from_request(request, plane.settings.max_body_bytes)
    result = await plane.run_pipeline(name, image)
    return JSONResponse(result.to_dict())


def routes() -> list[Route]:
    return [
        Route("/v1/pipelines", list_pipelines, methods=["GET"]),
        Route("/v1/pipelines/{pipeline}", run, methods=["POST"]),
    ]
