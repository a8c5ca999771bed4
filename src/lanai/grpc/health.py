"""``grpc.health.v1.Health``, answered from the data plane at the moment of asking.

Services:

- ``""`` (the server) and ``inference.GRPCInferenceService``: SERVING while the data plane's readiness is
  ``ready`` (not loading, drained with ``lanai drain``, too hot or saturated: what ``/health/ready`` says)
  and the door is not draining, else NOT_SERVING.
- a model's name: SERVING while it is loaded (so a Kubernetes gRPC probe can name a model); NOT_SERVING
  while it is in the store but not loaded (it failed to load, or was unloaded).
- anything else: Check answers NOT_FOUND, and Watch sends SERVICE_UNKNOWN, as the health protocol says.

Watch polls every ``poll_s`` seconds and sends each change; when the door starts draining it sends
NOT_SERVING and ends the stream, so that watchers do not hold the shutdown for the whole grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lanai.dataplane import DataPlane
from lanai.grpc.service import SERVICE_NAME

__all__ = ["HealthServicer"]

_SERVING: int = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING: int = health_pb2.HealthCheckResponse.NOT_SERVING
_UNKNOWN: int = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


class HealthServicer(health_pb2_grpc.HealthServicer):  # type: ignore[misc]
    """Health of the server and of each model, read from ``plane``; ``draining`` is set when the door stops."""

    def __init__(self, plane: DataPlane, draining: asyncio.Event, poll_s: float = 1.0) -> None:
        self._plane = plane
        self._draining = draining
        self._poll_s = poll_s

    def status(self, service: str) -> int | None:
        """The serving status of ``service``; None when there is no such service or model."""
        if service in ("", SERVICE_NAME):
            ready = self._plane.readiness().state == "ready"  # not loading, drained, too hot or saturated
            return _SERVING if ready and not self._draining.is_set() else _NOT_SERVING
        if self._plane.model_ready(service):
            return _NOT_SERVING if self._draining.is_set() else _SERVING
        if any(entry.name == service for entry in self._plane.repository_index()):
            return _NOT_SERVING
        return None

    async def Check(self, request: health_pb2.HealthCheckRequest, context: Any) -> health_pb2.HealthCheckResponse:
        status = self.status(request.service)
        if status is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"no service or model named {request.service!r}. "
                f"Hint: check '' for the server, {SERVICE_NAME!r}, or a model's name.",
            )
        return health_pb2.HealthCheckResponse(status=status)

    async def Watch(
        self, request: health_pb2.HealthCheckRequest, context: Any
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        last = None
        while True:
            status = self.status(request.service)
            status = _UNKNOWN if status is None else status
            if status != last:
                yield health_pb2.HealthCheckResponse(status=status)
                last = status
            if self._draining.is_set():
                if last != _NOT_SERVING:
                    yield health_pb2.HealthCheckResponse(status=_NOT_SERVING)
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._draining.wait(), self._poll_s)
