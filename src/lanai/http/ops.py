"""Operations endpoints: /health for people and load balancers, /metrics for Prometheus."""

from __future__ import annotations

import platform
import time
from functools import cache
from importlib.metadata import PackageNotFoundError, version

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import lanai
from lanai.host import Host
from lanai.telemetry.device import read_device
from lanai.telemetry.metrics import CONTENT_TYPE

__all__ = ["routes", "health_document"]

_RUNTIMES = ("onnxruntime", "numpy", "pillow", "starlette", "uvicorn", "llama-cpp-python", "ai-edge-litert")


@cache
def runtime_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in _RUNTIMES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def health_document(host: Host) -> dict:
    if not host.ready:
        status = "unavailable"
    elif host.failed or not host.models:
        status = "degraded"
    else:
        status = "healthy"
    models = [
        {
            "name": m.name,
            "version": m.version,
            "task": m.info.task,
            "backend": m.info.backend,
            "execution_provider": m.info.execution_provider,
            "max_batch_size": m.info.max_batch_size,
            "queue_depth": m.queue_depth,
        }
        for m in host.models.values()
    ]
    return {
        "status": status,
        "version": lanai.__version__,
        "uptime_s": round(time.time() - host.started_at, 1),
        "models": models,
        "failed": [{"name": name, "error": error} for name, error in host.failed.items()],
        "runtimes": runtime_versions(),
        "device": read_device().to_dict(),
    }


async def health(request: Request) -> Response:
    """200 while the server serves (healthy or degraded), 503 while starting or draining."""
    doc = health_document(request.app.state.host)
    return JSONResponse(doc, 503 if doc["status"] == "unavailable" else 200)


async def metrics(request: Request) -> Response:
    host: Host = request.app.state.host
    for model in host.models.values():
        host.metrics.queue_depth.labels(model.name).set(model.queue_depth)
    return Response(host.metrics.render(), media_type=CONTENT_TYPE)


def routes() -> list[Route]:
    return [Route("/health", health, methods=["GET"]), Route("/metrics", metrics, methods=["GET"])]
