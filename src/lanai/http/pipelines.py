"""``/v1/pipelines``: several models in a row behind one request (see ``lanai.pipelines``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lanai.host import Host
from lanai.http.body import image_from_request

__all__ = ["routes"]


async def list_pipelines(request: Request) -> Response:
    host: Host = request.app.state.host
    pipelines, failed = host.pipelines()
    return JSONResponse({
        "pipelines": [
            {"name": p.name, "steps": [{"name": s.name, "model": s.model, "task": s.task} for s in p.steps]}
            for p in pipelines.values()
        ],
        "failed": [{"name": name, "error": error} for name, error in failed.items()],
    })  # fmt: skip


async def run(request: Request) -> Response:
    """The image (multipart field ``file`` or a raw body) through every step; 200 even when a later step
    fails: the answer then says ``"status": "partial"`` and which step failed."""
    host: Host = request.app.state.host
    name = request.path_params["pipeline"]
    request.scope["lanai.model"] = name
    image = await image_from_request(request, host.settings.max_body_bytes)
    result = await host.run_pipeline(name, image)
    return JSONResponse(result.to_dict())


def routes() -> list[Route]:
    return [
        Route("/v1/pipelines", list_pipelines, methods=["GET"]),
        Route("/v1/pipelines/{pipeline}", run, methods=["POST"]),
    ]
