"""The ASGI application of the HTTP door: routes, error mapping, request metrics, authentication.

It holds a data plane but does not start or stop it: ``lanai.serve`` owns the lifecycle."""

from __future__ import annotations

import time
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lanai.dataplane import DataPlane
from lanai.http import admin, anthropic, console, deepstack, ollama, openai, ops, pair, pipelines, tasks, v2
from lanai.http.auth import AuthGate
from lanai.http.errors import EXCEPTION_HANDLERS
from lanai.security.guard import Guard
from lanai.security.pairing import PairingDesk
from lanai.telemetry.metrics import Metrics

__all__ = ["create_app"]

_MAX_CHILDREN = 4096  # distinct (model, endpoint, status) series kept at hand


class RequestMetrics:
    """Counts requests by model, endpoint (the route's template) and status, and times them."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            self.metrics.in_flight.dec()
            route = scope.get("route")
            endpoint = getattr(route, "path", "unmatched")
            model = scope.get("lanai.model", "")
            if scope.get("lanai.client_gone"):
                status = 499  # the client closed the connection first (nginx's code for it): no one got an answer
            key = (model, endpoint, status)
            children = self._children.get(key)
            if children is None:  # labels() builds and locks on every call; keep the children per key
                if len(self._children) > _MAX_CHILDREN:
                    self._children.clear()
                requests = self.metrics.requests.labels(model, endpoint, str(status))
                children = self._children[key] = (requests, self.metrics.request_seconds.labels(model, endpoint))
            children[0].inc()
            children[1].observe(time.perf_counter() - start)


def create_app(plane: DataPlane, guard: Guard | None = None, pairing: PairingDesk | None = None) -> Starlette:
    """The HTTP API over ``plane``; with ``guard``, every request passes its access checks; with
    ``pairing``, devices may pair with the box (``/v1/pair``)."""
    from lanai.http import openapi

    app = Starlette(
        # the task routes first: the router tries routes in order, and classify is the busiest
        routes=[
            *tasks.routes(),
            *deepstack.routes(),
            *v2.routes(),
            *openai.routes(),
            *anthropic.routes(),
            *ollama.routes(),
            *pipelines.routes(),
            *ops.routes(),
            *pair.routes(),
            *admin.routes(),
            *openapi.routes(),
            *console.routes(),  # the console's pages and files last: no API call is matched against them
        ],
        middleware=[
            Middleware(RequestMetrics, metrics=plane.metrics),
            *([Middleware(AuthGate, guard=guard)] if guard is not None else []),
        ],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
    )
    app.state.plane = plane
    app.state.guard = guard
    app.state.pairing = pairing
    return app
