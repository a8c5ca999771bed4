"""Task endpoints for apps: classify an image, plus the aliases that edge tutorials' clients call."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lanai.errors import BadInput
from lanai.host import Host
from lanai.http.body import image_from_request
from lanai.tasks.classify import MAX_TOP_K

__all__ = ["routes"]


def _top_k(request: Request) -> int:
    raw = request.query_params.get("top_k", "5")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_TOP_K:
        raise BadInput(f"top_k must be a whole number from 1 to {MAX_TOP_K}, not {raw!r}.", hint="use e.g. ?top_k=5.")
    return int(raw)


async def _classify(request: Request, name: str, version: str | None) -> Response:
    host: Host = request.app.state.host
    k = _top_k(request)
    host.get(name, version)  # an unknown model is reported before the body is read
    request.scope["lanai.model"] = name
    image = await image_from_request(request, host.settings.max_body_bytes)
    result = await host.classify(name, image, k, version)
    return JSONResponse(result.to_dict())


async def classify(request: Request) -> Response:
    return await _classify(request, request.path_params["model"], request.path_params.get("version"))


async def default_classify(request: Request) -> Response:
    """``POST /v1/infer`` and ``POST /predict``: the default model, as tutorials' clients send it."""
    model = request.app.state.host.default_model()
    return await _classify(request, model.name, None)


def routes() -> list[Route]:
    return [
        Route("/v1/models/{model}/classify", classify, methods=["POST"]),
        Route("/v1/models/{model}/versions/{version}/classify", classify, methods=["POST"]),
        Route("/v1/infer", default_classify, methods=["POST"]),
        Route("/predict", default_classify, methods=["POST"]),
    ]
