"""The one place where lanai's errors become HTTP statuses and JSON bodies."""

from __future__ import annotations

import logging
import math

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from lanai import errors
from lanai.errors import (
    Conflict,
    LanaiError,
    NotFound,
    NotReady,
    Overloaded,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
    WrongTask,
)
from lanai.http.json_response import dumps

__all__ = ["error_response", "status_of", "retry_headers", "describe", "kind_of", "EXCEPTION_HANDLERS"]

log = logging.getLogger(__name__)


def status_of(exc: LanaiError) -> int:
    if isinstance(exc, Unauthenticated):
        return 401
    if isinstance(exc, PermissionDenied):
        return 403
    if isinstance(exc, RateLimited):
        return 429
    if isinstance(exc, PayloadTooLarge):
        return 413
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Conflict):
        return 409
    if isinstance(exc, (Overloaded, NotReady)):
        return 503
    return 400  # BadInput, and the store, load and configuration errors a request can trigger


# Where each task is served over HTTP: the hint for a request that asked a model for another task.
_TASK_ROUTES = {
    "chat": "POST /v1/chat/completions",
    "completion": "POST /v1/completions",
    "embed": "POST /v1/embeddings",
    "infer": "POST /v2/models/{model}/infer",
}


def describe(exc: LanaiError) -> str:
    """The error's message and hint, with this door's own hint where the core has none to give."""
    if isinstance(exc, WrongTask) and exc.hint is None:
        route = _TASK_ROUTES.get(exc.task, f"POST /v1/models/{{model}}/{exc.task}").format(model=exc.model)
        return f"{exc.message} Hint: send its requests to {route}."
    return str(exc)


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None, kind: str | None = None
) -> Response:
    """``{"error": message}``, and ``"kind"``: the class of ``lanai.errors`` it was, for clients that
    tell apart errors sharing a status (a full queue or a server starting; a model or a version)."""
    doc = {"error": message} if kind is None else {"error": message, "kind": kind}
    body = dumps(doc)
    return Response(body, status, headers=headers, media_type="application/json")


def kind_of(exc: LanaiError) -> str:
    """The name of the most specific public class of ``lanai.errors`` that ``exc`` is."""
    for cls in type(exc).__mro__:
        if cls.__module__ == "lanai.errors" and cls.__name__ in errors.__all__:
            return cls.__name__
    return "LanaiError"


def retry_headers(exc: LanaiError) -> dict[str, str] | None:
    """``Retry-After`` for the errors a client should simply retry (a full queue, a server starting)."""
    if isinstance(exc, (Overloaded, RateLimited)):
        return {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
    if isinstance(exc, NotReady):
        return {"Retry-After": "1"}
    return None


async def _lanai_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LanaiError)
    return error_response(status_of(exc), describe(exc), retry_headers(exc), kind_of(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    messages = {
        404: f"no such endpoint: {request.method} {request.url.path}. Hint: GET /openapi.json lists the API.",
        405: f"{request.method} is not allowed on {request.url.path}.",
    }
    message = messages.get(exc.status_code, str(exc.detail))
    return error_response(exc.status_code, message, dict(exc.headers or {}))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, f"internal error ({type(exc).__name__}); the server log has the details.")


EXCEPTION_HANDLERS = {LanaiError: _lanai_error, HTTPException: _http_error, Exception: _unexpected}
