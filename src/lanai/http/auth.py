"""Access control at the HTTP door: which level each route needs, and the middleware that checks it.

Every request's address is checked against the networks the box serves; then the request is identified
by its key (``Authorization: Bearer <key>`` or ``X-API-Key: <key>``) and its address, and checked against
the level its route needs (see ``lanai.security.guard``), before any of its body is read. Routes are
public or inference-level only if listed below: anything else, including a route added later and not
listed, needs an admin.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from lanai.errors import LanaiError
from lanai.http.errors import describe, error_response, kind_of, retry_headers, status_of
from lanai.security.guard import ANONYMOUS, Access, Guard, Principal
from lanai.security.identity import PeerCertificate

__all__ = ["AuthGate", "access_of", "caller", "allow_model", "PAIRING"]

_PUBLIC = {
    ("GET", "/health"),
    ("GET", "/health/live"),
    ("GET", "/health/ready"),
    ("GET", "/v2/health/live"),
    ("GET", "/v2/health/ready"),
    ("GET", "/"),  # the console's pages and files (http/console.py): static, no data; the API calls they
    ("GET", "/docs"),  # make from the browser carry the caller's key and get the API's own checks
}
_CONSOLE_FILES = re.compile(r"/ui/[a-z]+|/ui/(assets|swagger-ui)/[^/]+")
PAIRING = frozenset({("POST", "/v1/pair"), ("POST", "/v1/pair/confirm")})
"""A device pairing with a one-time code (see ``lanai.security.pairing``): anyone on an allowed network,
with or without a certificate; the code is the credential, and its attempts are few."""
_INFER = [
    (method, re.compile(pattern))
    for method, pattern in (
        ("POST", r"/v1/models/[^/]+(/versions/[^/]+)?/[a-z0-9_-]+"),  # tasks
        ("POST", r"/v1/infer|/predict"),
        ("POST", r"/v1/vision/detection|/v1/vision/face"),  # DeepStack-compatible detection (http/deepstack.py)
        ("GET", r"/v2|/v2/models/[^/]+(/versions/[^/]+)?(/ready)?"),
        ("POST", r"/v2/models/[^/]+(/versions/[^/]+)?/infer"),
        ("POST", r"/v2/repository/index"),
        ("GET", r"/v1/models|/v1/pipelines|/openapi\.json"),
        ("POST", r"/v1/chat/completions|/v1/completions|/v1/embeddings|/v1/pipelines/[^/]+"),
        ("POST", r"/v1/messages|/v1/messages/count_tokens"),  # Anthropic's Messages API (http/anthropic.py)
        # Ollama's API (http/ollama.py), as its OpenAI counterparts. /api/version is not public, as GET /v2
        # is not: a version is a fingerprint, and every app that may use the API has what it takes to ask.
        # Pull, push, create, copy and delete change nothing (they answer how models come to lanai).
        ("POST", r"/api/(chat|generate|embed|embeddings|show|pull|push|create|copy)"),
        ("GET", r"/api/(tags|ps|version)"),
        ("DELETE", r"/api/delete"),
    )
]
_METRICS = ("GET", "/metrics")


def access_of(method: str, path: str) -> Access:
    """The level a request needs: listed routes are public or inference; every other one is admin."""
    if (method, path) in _PUBLIC or (method, path) in PAIRING or method == "HEAD" and ("GET", path) in _PUBLIC:
        return Access.PUBLIC
    if method in ("GET", "HEAD") and _CONSOLE_FILES.fullmatch(path):
        return Access.PUBLIC
    for wanted, pattern in _INFER:
        if method == wanted and pattern.fullmatch(path):
            return Access.INFER
    return Access.ADMIN


def caller(request: Request) -> Principal:
    """Who made ``request`` (anonymous when the gate did not run, as in unit tests of handlers)."""
    return request.scope.get("lanai.caller", ANONYMOUS)  # type: ignore[no-any-return]


def allow_model(request: Request, model: str) -> None:
    """PermissionDenied unless the caller's key may use ``model``."""
    guard: Guard | None = request.app.state.guard
    if guard is not None:
        guard.check_model(caller(request), model)


def _header(scope: Scope, wanted: bytes) -> str | None:
    values = [value.decode("latin-1") for name, value in scope["headers"] if name == wanted]
    return ", ".join(values) if values else None


def _token(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            return value[7:].strip().decode("latin-1")
        if name == b"x-api-key":
            return value.strip().decode("latin-1")
    return None


class AuthGate:
    """Identifies the caller, checks the route's level, and refuses (401, 403 or 429) before the body."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        access = access_of(method, path)
        token = _token(scope)
        try:
            peer = self.guard.admit((scope.get("client") or (None, 0))[0], _header(scope, b"x-forwarded-for"))
            cert: PeerCertificate | None = scope.get("lanai.peer_cert")
            if (method, path) not in PAIRING:
                self.guard.check_certificate(cert, peer)
            if (method, path) == _METRICS and self.guard.is_metrics_key(token):
                who, access = ANONYMOUS, Access.PUBLIC
            else:
                who = self.guard.identify(token, peer, access, cert=cert)
            self.guard.authorize(who, access)
        except LanaiError as exc:
            await self._refuse(exc, send, path)
            return
        scope["lanai.caller"] = who
        try:
            await self.app(scope, receive, send)
        finally:
            self.guard.release(who)

    async def _refuse(self, exc: LanaiError, send: Send, path: str) -> None:
        headers = dict(retry_headers(exc) or {})
        status = status_of(exc)
        if status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="lanai"'
        if path.startswith("/v1/messages"):  # Anthropic's clients read their own error shape
            from lanai.http.anthropic import anthropic_error

            response = anthropic_error(status, describe(exc), headers)
        else:
            response = error_response(status, describe(exc), headers, kind_of(exc))
        await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})
