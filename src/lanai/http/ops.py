"""Operations endpoints: /health for people and load balancers, /metrics for Prometheus."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lanai.dataplane import DataPlane
from lanai.http.auth import caller
from lanai.http.json_response import JSONResponse
from lanai.telemetry.metrics import CONTENT_TYPE

__all__ = ["routes"]


async def health(request: Request) -> Response:
    """200 while the server serves (healthy or degraded), 503 while starting or draining. The models,
    versions, runtimes and machine are shown to admins only; anyone else gets the state and why."""
    report = request.app.state.plane.health()
    status = 503 if report.status == "unavailable" else 200
    full = caller(request).is_admin or request.app.state.guard is None
    return JSONResponse(report.to_dict() if full else report.summary().to_dict(), status)


async def metrics(request: Request) -> Response:
    plane: DataPlane = request.app.state.plane
    return Response(plane.render_metrics(), media_type=CONTENT_TYPE)


def routes() -> list[Route]:
    return [Route("/health", health, methods=["GET"]), Route("/metrics", metrics, methods=["GET"])]
