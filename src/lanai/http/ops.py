"""Operations endpoints: /health for people and load balancers, /v1/status for the web console, /metrics
for Prometheus."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lanai.dataplane import DataPlane
from lanai.http.auth import caller
from lanai.http.json_response import JSONResponse
from lanai.protocol.v2 import ServerLive
from lanai.telemetry.metrics import CONTENT_TYPE

__all__ = ["routes"]


async def health(request: Request) -> Response:
    """200 while the server serves (healthy or degraded), 503 while starting or draining. The models,
    versions, runtimes and machine are shown to admins only; anyone else gets the state and why."""
    report = request.app.state.plane.health()
    status = 503 if report.status == "unavailable" else 200
    full = caller(request).is_admin or request.app.state.guard is None
    return JSONResponse(report.to_dict() if full else report.summary().to_dict(), status)


async def live(request: Request) -> Response:
    """200 whenever the process answers: what a liveness probe asks (restart the box's lanai if not)."""
    return JSONResponse(ServerLive(True).to_dict())


async def ready(request: Request) -> Response:
    """200 only when the box should be sent work; 503 while loading, draining or degraded, saying why."""
    readiness = request.app.state.plane.readiness()
    return JSONResponse(readiness.to_dict(), 200 if readiness.state == "ready" else 503)


async def drain(request: Request) -> Response:
    """POST: take the box out of rotation (it finishes and still serves what it is sent); DELETE: back in."""
    plane: DataPlane = request.app.state.plane
    if request.method == "POST":
        plane.drain()
    elif request.method == "DELETE":
        plane.undrain()
    return JSONResponse(plane.readiness().to_dict())


async def status(request: Request) -> Response:
    """The box now and over the last 15 minutes, with the recent warnings and errors: the web console's
    page (admins only). 200 in every state; ``status`` says which."""
    plane: DataPlane = request.app.state.plane
    return JSONResponse(plane.status().to_dict())


async def metrics(request: Request) -> Response:
    plane: DataPlane = request.app.state.plane
    return Response(plane.render_metrics(), media_type=CONTENT_TYPE)


def routes() -> list[Route]:
    return [
        Route("/health", health, methods=["GET"]),
        Route("/health/live", live, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
        Route("/v1/admin/drain", drain, methods=["GET", "POST", "DELETE"]),
        Route("/v1/status", status, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
