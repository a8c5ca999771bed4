"""Task endpoints for apps: ``POST /v1/models/{model}/{task}`` for every task of the registry that has
one, plus the aliases that edge tutorials' clients call (``/v1/infer``, ``/predict``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lanai.dataplane import DataPlane
from lanai.errors import BadInput
from lanai.http.auth import allow_model
from lanai.http.body import image_from_request, json_object, read_body
from lanai.http.json_response import JSONResponse
from lanai.tasks import TASKS, Task
from lanai.tasks.base import parse_params

__all__ = ["routes"]


async def _run(request: Request, task: Task, name: str, version: str | None) -> Response:
    plane: DataPlane = request.app.state.plane
    # the parameters, the model and its queue's room are checked before the body is read
    params = parse_params(task.params, request.query_params, task=task.name)
    allow_model(request, name)
    plane.check_room(name, version)
    request.scope["lanai.model"] = name
    data = await _input(request, task, plane.settings.max_body_bytes)
    result = await plane.run_task(name, task.name, data, params, version)
    render = getattr(task, "render", None)
    if render is not None and getattr(params, "draw", False):  # e.g. detect?draw=true: the image, drawn on
        body, media_type = await asyncio.to_thread(render, data, result)
        return Response(body, media_type=media_type)
    return JSONResponse(result.to_dict())


async def _input(request: Request, task: Task, limit: int) -> bytes | str:
    """What the task takes: an image (multipart field ``file`` or a raw body), or text (a JSON object
    ``{"text": "..."}``, or the raw body as UTF-8)."""
    if task.accepts == "image":
        return await image_from_request(request, limit)
    body = await read_body(request, limit)
    if request.headers.get("content-type", "").lower().startswith("application/json"):
        text = json_object(body).get("text")
        if not isinstance(text, str):
            raise BadInput('the JSON body has no "text" string.', hint='send {"text": "..."} or the raw text.')
        return text
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput("the text is not UTF-8.", hint="send the text as UTF-8.") from None


def _endpoint(task: Task) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await _run(request, task, request.path_params["model"], request.path_params.get("version"))

    return endpoint


async def default_classify(request: Request) -> Response:
    """``POST /v1/infer`` and ``POST /predict``: the default model, as tutorials' clients send it."""
    model = request.app.state.plane.default_model()
    return await _run(request, model.task, model.name, None)


def routes() -> list[Route]:
    found = []
    for task in TASKS.values():
        if task.routed:
            endpoint = _endpoint(task)
            found.append(Route(f"/v1/models/{{model}}/{task.name}", endpoint, methods=["POST"]))
            found.append(Route(f"/v1/models/{{model}}/versions/{{version}}/{task.name}", endpoint, methods=["POST"]))
    return [
        *found,
        Route("/v1/infer", default_classify, methods=["POST"]),
        Route("/predict", default_classify, methods=["POST"]),
    ]
