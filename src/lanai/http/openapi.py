"""The OpenAPI document (placeholder until the full document lands)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def openapi_json(request: Request) -> Response:
    return JSONResponse({"openapi": "3.1.0", "info": {"title": "lanai", "version": "0.1.0"}, "paths": {}})


def routes() -> list[Route]:
    return [Route("/openapi.json", openapi_json, methods=["GET"])]
