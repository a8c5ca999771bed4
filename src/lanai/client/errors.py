"""The exceptions the client raises, in one tree, and how an HTTP answer or failure becomes one.

A server's error comes back as the class of :mod:`lanai.errors` the server raised, with the server's
message and hint, so one ``except ModelNotFound`` serves code that runs models in-process and code that
calls a box::

    LanaiError
    ├── BadInput                400: a corrupt image, a wrong shape, malformed JSON
    │   └── PayloadTooLarge     413
    ├── NotFound                404: a key or device (admin calls)
    │   └── ModelNotFound       404
    │       └── VersionNotFound 404 naming a version
    ├── Conflict                409: a name already taken (admin calls)
    ├── Overloaded              503 from a full queue (``retry_after`` from ``Retry-After``)
    ├── RateLimited             429: this key's rate, or too many bad keys (``retry_after``)
    ├── NotReady                503 while the server or model is starting, unloading or draining
    └── ClientError             what only a client meets
        ├── Unauthorized        401: missing or wrong API key
        ├── Forbidden           403: the key may not do that
        ├── EndpointNotFound    404/405 for a route the server does not have (an older server?)
        ├── ServerError         500 and any other status; an error event inside a stream
        ├── ProtocolError       an answer the client cannot read
        └── ConnectionFailed    no answer: refused, reset, timed out (``sent``: the request may have run)

The server names the class in its error body (``"kind"``, or OpenAI's ``code``); for a server that does
not, :func:`error_from_answer` tells classes sharing a status apart by the message.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from lanai.errors import (
    BadInput,
    Conflict,
    LanaiError,
    ModelNotFound,
    NotFound,
    NotReady,
    Overloaded,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
    VersionNotFound,
)

__all__ = [
    "LanaiError",
    "BadInput",
    "PayloadTooLarge",
    "NotFound",
    "ModelNotFound",
    "VersionNotFound",
    "Conflict",
    "Overloaded",
    "RateLimited",
    "NotReady",
    "ClientError",
    "Unauthorized",
    "Forbidden",
    "EndpointNotFound",
    "ServerError",
    "ProtocolError",
    "ConnectionFailed",
    "error_from_answer",
    "connection_failed",
    "retry_after",
]

_NOT_READY = re.compile(r"unload|starting|shutting down|draining|not ready", re.IGNORECASE)
_VERSION = re.compile(r"\bhas (no (active )?)?version\b")  # "has no version '3'", "has version 2 loaded, not…"


class ClientError(LanaiError):
    """An error only a client meets; ``status`` is the HTTP status when there was an answer."""

    def __init__(self, message: str, *, hint: str | None = None, status: int | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class Unauthorized(ClientError):
    """401: the server wants an API key and got none, or the wrong one."""


class Forbidden(ClientError):
    """403: the key is known but may not do this."""


class EndpointNotFound(ClientError):
    """404 or 405 for a route: the server does not have this endpoint (an older lanai, or not lanai)."""


class ServerError(ClientError):
    """The server failed (500), answered a status the client does not expect, or sent an error event."""


class ProtocolError(ClientError):
    """The answer cannot be read: not JSON, or not the shape the endpoint promises."""


class ConnectionFailed(ClientError):
    """No answer: the connection was refused, reset or timed out. ``sent`` is True when the request may
    have reached the server (so it may have run); ``server`` is the base URL tried last."""

    def __init__(self, message: str, *, hint: str | None = None, sent: bool = False, server: str = "") -> None:
        super().__init__(message, hint=hint)
        self.sent = sent
        self.server = server


def _split_hint(text: str) -> tuple[str, str | None]:
    message, sep, hint = text.partition(" Hint: ")
    return (message, hint) if sep else (text, None)


_KINDS: dict[str, type[LanaiError]] = {
    cls.__name__: cls
    for cls in (
        BadInput,
        PayloadTooLarge,
        NotFound,
        ModelNotFound,
        VersionNotFound,
        Conflict,
        Overloaded,
        NotReady,
        RateLimited,
        Unauthenticated,
        PermissionDenied,
    )  # fmt: skip
}
_OPENAI_CODES = {"model_not_found": ModelNotFound, "overloaded": Overloaded, "not_ready": NotReady}


def _read_error(status: int, content: bytes) -> tuple[str, type[LanaiError] | None]:
    """The server's error text and, when it says, its class: ``{"error": "...", "kind": "..."}`` (lanai)
    or ``{"error": {"message": ..., "code": ...}}`` (OpenAI)."""
    try:
        doc: Any = json.loads(content)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        error, kind = doc.get("error"), _KINDS.get(str(doc.get("kind")))
        if isinstance(error, dict):
            kind = _OPENAI_CODES.get(str(error.get("code")))
            error = error.get("message")
        if isinstance(error, str):
            return error, kind
    text = content[:300].decode("utf-8", "replace").strip()
    return f"HTTP {status}" + (f": {text}" if text else ""), None


def retry_after(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), or None when absent or unreadable."""
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.replace(".", "", 1).isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def error_from_answer(status: int, headers: Mapping[str, str], content: bytes) -> LanaiError:
    """The exception for an error answer, with the server's message and hint."""
    text, kind = _read_error(status, content)
    message, hint = _split_hint(text)
    if kind is RateLimited:
        wait = retry_after(headers)
        return RateLimited(message, hint=hint, retry_after=1.0 if wait is None else wait)
    if kind is Overloaded or (kind is None and status == 429):
        wait = retry_after(headers)
        return Overloaded(message, hint=hint, retry_after=1.0 if wait is None else wait)
    if kind is Unauthenticated or kind is PermissionDenied:
        cls = Unauthorized if kind is Unauthenticated else Forbidden
        return cls(message, hint=hint, status=status)
    if kind is not None and status in (400, 404, 409, 413, 503):  # the server named its class
        return kind(message, hint=hint)
    # an older server, or not lanai: judge by the status and the message
    if status == 400:
        return BadInput(message, hint=hint)
    if status == 413:
        return PayloadTooLarge(message, hint=hint)
    if status == 409:
        return Conflict(message, hint=hint)
    if status == 401:
        return Unauthorized(message, hint=hint, status=status)
    if status == 403:
        return Forbidden(message, hint=hint, status=status)
    if status == 405 or (status == 404 and message.startswith("no such endpoint")):
        return EndpointNotFound(message, hint=hint, status=status)
    if status == 404:
        return (VersionNotFound if _VERSION.search(message) else ModelNotFound)(message, hint=hint)
    if status == 503 and _NOT_READY.search(message):
        return NotReady(message, hint=hint)
    if status in (429, 503):
        wait = retry_after(headers)
        return Overloaded(message, hint=hint, retry_after=1.0 if wait is None else wait)
    return ServerError(message, hint=hint, status=status)


def connection_failed(exc: httpx.TransportError, server: str) -> ConnectionFailed:
    """A transport failure as ConnectionFailed; ``sent`` unless httpx failed before sending anything."""
    unsent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol))
    what = type(exc).__name__
    detail = str(exc) or what
    if unsent:
        return ConnectionFailed(
            f"cannot connect to {server}: {detail}",
            hint="check that lanai serve runs there and that the address and port are right.",
            server=server,
        )
    return ConnectionFailed(
        f"the connection to {server} failed during the request ({what}: {detail})",
        hint="the server may have stopped or be overloaded; a longer timeout may help.",
        sent=True,
        server=server,
    )
