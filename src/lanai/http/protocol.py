"""uvicorn's HTTP/1.1 protocol with the limits a box on a shared network needs.

uvicorn closes idle keep-alive connections but lets a client take as long as it likes over a request's
headers and body, and take as many connections as it likes: a few slow or greedy clients (slowloris)
could hold every connection a small box has. This protocol adds, per connection:

- a deadline for each request's headers (``header_timeout``), from the connection's start or the end
  of the previous answer;
- a deadline for its body (``body_timeout``), from the end of its headers;
- at most ``max_connections_per_client`` open connections per client address; one more gets a 429 and
  is closed;
- at most ``max_connections`` open connections in all; one more gets a 503 and is closed. (uvicorn's own
  ``limit_concurrency`` answers a bare 503 without ``Retry-After``, so lanai counts them here instead.)

It also hands the application what the TLS handshake learnt about the client, which uvicorn does not:
the client certificate it verified, as ``scope["lanai.peer_cert"]`` (a ``PeerCertificate``, parsed once
per connection), and as the ASGI TLS extension's ``client_cert_chain`` (PEM) for any other reader.

It builds on uvicorn's httptools protocol (the fast one lanai uses), overriding its connection and
parser callbacks only to start and stop timers; everything else is uvicorn's.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from lanai.security.identity import PeerCertificate

__all__ = ["ConnectionLimits", "protocol_with"]


@dataclass
class ConnectionLimits:
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    max_connections_per_client: int = 64
    max_connections: int = 1024
    open: Counter[str] = field(default_factory=Counter)
    """Open connections per client address (shared by every connection of one server)."""
    refused: int = 0
    total: int = 0
    """Open connections over all addresses."""


_TOO_MANY = json.dumps(
    {
        "error": "too many connections from this address. Hint: reuse connections (keep-alive) or open fewer at once.",
        "kind": "RateLimited",
    }  # fmt: skip
).encode()
_FULL = json.dumps(
    {
        "error": "the server has as many connections open as it takes. Hint: retry after a moment, or reuse "
        "connections (keep-alive).",
        "kind": "Overloaded",
    }  # fmt: skip
).encode()


def _refusal(status: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\nconnection: close\r\nretry-after: 1\r\n"
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )  # fmt: skip


_TOO_MANY_RESPONSE = _refusal(b"429 Too Many Requests", _TOO_MANY)
_FULL_RESPONSE = _refusal(b"503 Service Unavailable", _FULL)


class _LimitedProtocol(HttpToolsProtocol):  # type: ignore[misc]
    limits: ConnectionLimits

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._peer_cert, self._tls = _peer_certificate(transport)
        self._address: str | None = self.client[0] if self.client else ""
        refusal = None
        if self.limits.open[self._address] >= self.limits.max_connections_per_client:
            refusal = _TOO_MANY_RESPONSE
        elif self.limits.total >= self.limits.max_connections:
            refusal = _FULL_RESPONSE
        if refusal is not None:
            self._address = None  # not counted: refused
            self.limits.refused += 1
            transport.write(refusal)
            transport.close()
            return
        self.limits.open[self._address] += 1
        self.limits.total += 1
        self._arm(self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._address is not None:
            self.limits.total -= 1
            self.limits.open[self._address] -= 1
            if self.limits.open[self._address] <= 0:
                del self.limits.open[self._address]
            self._address = None
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls is not None:
            self.scope["extensions"] = {"tls": self._tls}  # type: ignore[dict-item]
            if self._peer_cert is not None:
                self.scope["lanai.peer_cert"] = self._peer_cert  # type: ignore[typeddict-unknown-key]
        if self._deadline is None:  # the next request on a kept-alive connection: its headers, in time
            self._arm(self.limits.header_timeout)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._arm(self.limits.body_timeout)
        if self.cycle is not None:  # None when the request was refused on the spot
            self.cycle.transport = cast(asyncio.Transport, _HeadWithBody(self.transport, self.loop))

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._disarm()  # idle now: uvicorn's keep-alive timeout takes over

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if getattr(self, "_deadline", None) is not None:
            self._deadline.cancel()  # type: ignore[union-attr]
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()


class _HeadWithBody:
    """The connection as one answer's cycle sees it: the cycle's first write (its status line and headers)
    waits for its next (the body), and both go out in one write. uvicorn writes them apart: two send(2)
    calls, two TCP segments, and the client woken twice for every answer. A head whose body is slow to
    come (a stream) goes out on the loop's next turn on its own."""

    __slots__ = ("_transport", "_loop", "_head", "_started")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._head: bytes | None = None
        self._started = False

    def write(self, data: bytes) -> None:
        if self._head is not None:
            data, self._head = self._head + data, None
        elif not self._started:
            self._started = True
            self._head = data
            self._loop.call_soon(self._flush)
            return
        self._transport.write(data)

    def _flush(self) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            if not self._transport.is_closing():
                self._transport.write(head)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _peer_certificate(transport: asyncio.Transport) -> tuple[PeerCertificate | None, dict[str, Any] | None]:
    """The client certificate the handshake verified (None without one) and the ASGI TLS extension's
    dict (None on a plain connection)."""
    tls: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
    if tls is None:
        return None, None
    der = tls.getpeercert(binary_form=True)
    extension: dict[str, Any] = {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": None,
        "cipher_suite": None,
    }
    return (PeerCertificate.from_der(der) if der else None), extension


def protocol_with(limits: ConnectionLimits) -> Any:
    """uvicorn's httptools protocol class, bound to ``limits`` (for ``uvicorn.Config(http=...)``)."""
    return type("LanaiHttpProtocol", (_LimitedProtocol,), {"limits": limits})
