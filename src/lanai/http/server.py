"""The HTTP door: the ASGI app under uvicorn, on a socket we bind ourselves (so port 0 works).

uvicorn serves and drains connections; it does not own the process: signals and the data plane's
lifecycle belong to ``lanai.serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import ssl
from collections.abc import Iterator
from typing import Any, cast

import uvicorn

from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.errors import ConfigError
from lanai.http.accept import Acceptor
from lanai.http.app import create_app
from lanai.http.protocol import ConnectionLimits, protocol_with
from lanai.security.guard import Guard
from lanai.security.pairing import PairingDesk
from lanai.security.reload import CertPair, load_pair_into

__all__ = ["bind", "HttpDoor"]

log = logging.getLogger(__name__)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (IPv6 when the address has a colon)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror}.",
            hint="pick another --port, or stop the program using it.",
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class _Uvicorn(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # lanai.serve handles the signals and tells every door to stop

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's start, with lanai's ``Acceptor`` on each socket in place of ``loop.create_server``
        (which, on uvloop, accepts one connection per loop turn)."""
        await super().startup(sockets=[])
        config = self.config

        def protocol() -> asyncio.Protocol:
            make: Any = config.http_protocol_class
            state = self.lifespan.state
            return cast(asyncio.Protocol, make(config=config, server_state=self.server_state, app_state=state))

        self.servers = [Acceptor(sock, protocol, config.ssl) for sock in sockets or []]  # type: ignore[misc]  # uvicorn only closes them


class HttpDoor:
    """The HTTP API over ``plane`` on ``sock``. ``serve()`` returns once ``stop()`` has drained it."""

    def __init__(
        self, plane: DataPlane, settings: Settings, sock: socket.socket, guard: Guard | None = None,
        pairing: PairingDesk | None = None,
    ) -> None:  # fmt: skip
        self.limits = ConnectionLimits(
            settings.header_timeout, settings.body_timeout, settings.max_connections_per_client,
            settings.max_connections,
        )  # fmt: skip
        config = uvicorn.Config(
            create_app(plane, guard, pairing),
            http=protocol_with(self.limits),
            lifespan="off",
            log_config=None,
            log_level=settings.log_level,
            access_log=settings.access_log,
            timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout),
            server_header=False,
            ssl_certfile=settings.tls_certfile,
            ssl_keyfile=settings.tls_keyfile,
            ssl_ca_certs=str(settings.tls_client_ca) if settings.tls_client_ca else None,
            # mTLS: a client without a certificate may finish the handshake only to pair; the access
            # gate refuses it everything else (lanai.http.auth)
            ssl_cert_reqs=ssl.CERT_OPTIONAL if settings.tls_client_ca else ssl.CERT_NONE,
        )
        self._server = _Uvicorn(config)
        self.sock = sock

    @property
    def started(self) -> bool:
        return self._server.started

    async def serve(self) -> None:
        await self._server.serve(sockets=[self.sock])

    def stop(self) -> None:
        """Stop accepting connections, let the requests in flight finish (up to shutdown_timeout)."""
        self._server.should_exit = True

    def use_certificate(self, pair: CertPair) -> None:
        """Serve ``pair`` from the next TLS handshake on; open connections keep the certificate they have.
        uvicorn made one ``SSLContext`` at start, and every new connection wraps itself in it."""
        context = self._server.config.ssl if self._server.config.loaded else None
        if context is None:
            raise RuntimeError("the HTTP door serves no TLS (or has not started): there is no certificate to switch")
        load_pair_into(context, pair)
