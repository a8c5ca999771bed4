"""API-key authentication: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` on every request,
except the health checks that load balancers and orchestrators make without credentials."""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["ApiKeyAuth", "OPEN_PATHS"]

OPEN_PATHS = frozenset({"/health", "/v2/health/live", "/v2/health/ready"})
_BODY = json.dumps(
    {"error": "missing or wrong API key. Hint: send the header 'Authorization: Bearer <key>' (or 'X-API-Key: <key>')."}
).encode()


class ApiKeyAuth:
    """Refuses requests without the key with 401, before any of their body is read."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self._key = api_key.encode()

    def _allowed(self, scope: Scope) -> bool:
        if scope["path"] in OPEN_PATHS:
            return True
        for name, value in scope["headers"]:
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                return hmac.compare_digest(value[7:].strip(), self._key)
            if name == b"x-api-key":
                return hmac.compare_digest(value.strip(), self._key)
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(_BODY)).encode()),
            (b"www-authenticate", b'Bearer realm="lanai"'),
        ]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": _BODY})
