"""Running the HTTP API under uvicorn on a socket we bind ourselves (so port 0 works)."""

from __future__ import annotations

import logging
import math
import socket

import uvicorn

from lanai.config import Settings
from lanai.errors import ConfigError
from lanai.host import Host
from lanai.http.app import create_app

__all__ = ["bind", "build_server"]

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


def build_server(host: Host, settings: Settings) -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(host),
        lifespan="on",
        log_config=None,
        log_level=settings.log_level,
        access_log=settings.access_log,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout),
        server_header=False,
        ssl_certfile=settings.tls_certfile,
        ssl_keyfile=settings.tls_keyfile,
    )
    return uvicorn.Server(config)
