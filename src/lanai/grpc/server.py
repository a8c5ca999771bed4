"""The gRPC door: a ``grpc.aio`` server on the data plane, with health checking and reflection.

It runs on the event loop that runs the data plane (and the HTTP door); ``lanai.serve`` starts it after
the data plane and stops it before the data plane shuts down, and gives it the same access guard as the
HTTP door (see ``interceptor``).

Connections are bounded as on the HTTP door (see :func:`connection_options`): a client must finish its
TLS and HTTP/2 handshake within ``header_timeout``, an idle connection is closed after
``grpc_idle_timeout``, one connection carries at most ``grpc_max_streams`` calls at once, the server
takes at most ``max_connections`` connections, and clients may not ping more often than every 30 s.
Under TLS the certificate is switched without a restart (``use_certificate``; ``lanai.security.reload``
calls it): grpc asks the door before every new handshake whether there is a new one.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.errors import ConfigError
from lanai.grpc import inference_pb2
from lanai.grpc.health import HealthServicer
from lanai.grpc.inference_pb2_grpc import add_GRPCInferenceServiceServicer_to_server
from lanai.grpc.interceptor import DoorInterceptor
from lanai.grpc.metrics import grpc_metrics
from lanai.grpc.service import SERVICE_NAME, InferenceServicer
from lanai.security.guard import Guard
from lanai.security.keys import KeyRing
from lanai.security.reload import CertPair, read_pair

__all__ = ["GrpcDoor", "SERVICE_NAMES", "connection_options"]

log = logging.getLogger(__name__)

SERVICE_NAMES = (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME)
"""What reflection lists."""

_MIN_PING_INTERVAL_MS = 30_000
"""Clients may ping an idle connection this often (keepalive); more often counts as abuse."""
_KEEPALIVE_MS, _KEEPALIVE_TIMEOUT_MS = 60_000, 20_000
"""The server pings a quiet connection every minute and drops it if no answer comes within 20 s."""


def connection_options(settings: Settings) -> list[tuple[str, Any]]:
    """The grpc core server's channel arguments that keep slow, idle and greedy clients from holding it."""
    return [
        ("grpc.server_handshake_timeout_ms", max(1, round(settings.header_timeout * 1000))),  # TLS + HTTP/2 preface
        ("grpc.max_connection_idle_ms", max(1, round(settings.grpc_idle_timeout * 1000))),  # then GOAWAY
        ("grpc.max_concurrent_streams", settings.grpc_max_streams),
        ("grpc.max_allowed_incoming_connections", settings.max_connections),
        ("grpc.keepalive_time_ms", _KEEPALIVE_MS),
        ("grpc.keepalive_timeout_ms", _KEEPALIVE_TIMEOUT_MS),
        ("grpc.http2.min_ping_interval_without_data_ms", _MIN_PING_INTERVAL_MS),
        ("grpc.http2.max_ping_strikes", 2),  # then GOAWAY "too_many_pings"
        ("grpc.keepalive_permit_without_calls", 0),  # an idle connection need not be kept alive
    ]


class GrpcDoor:
    """The Open Inference Protocol over gRPC on ``plane``: ``start()`` binds and serves, ``stop()`` drains."""

    def __init__(self, plane: DataPlane, settings: Settings, guard: Guard | None = None) -> None:
        """``guard`` checks every call (one shared with the HTTP door); without one, the door makes its own
        from ``settings`` and the keys of the store at ``settings.home``."""
        self.plane = plane
        self.settings = settings
        self.guard = guard if guard is not None else Guard(settings, KeyRing(settings.home), plane.metrics)
        self._server: grpc.aio.Server | None = None
        self._draining = asyncio.Event()
        self._client_ca: bytes | None = None
        self._next_certificate: Any = None  # a ServerCertificateConfiguration for grpc to take
        self._lock = threading.Lock()  # grpc takes it from its own threads

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host``:``port`` (port 0: a free one; IPv6 when ``host`` has a colon) and serve.
        Returns the port bound. Uses TLS when the settings name a certificate, as the HTTP door does."""
        if self._server is not None:
            raise RuntimeError("this gRPC door has started already")
        server = grpc.aio.server(
            interceptors=[DoorInterceptor(self.guard, grpc_metrics(self.plane.metrics.registry))],
            options=[
                ("grpc.max_receive_message_length", min(self.settings.max_body_bytes, 2**31 - 1)),
                ("grpc.max_send_message_length", -1),
                ("grpc.so_reuseport", 0),  # a port in use is an error, not a port shared with another server
                *connection_options(self.settings),
            ],
        )
        add_GRPCInferenceServiceServicer_to_server(InferenceServicer(self.plane, self.guard), server)  # type: ignore[no-untyped-call]
        health_pb2_grpc.add_HealthServicer_to_server(HealthServicer(self.plane, self._draining), server)
        _enable_reflection(server)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            bound = self._listen(server, address)
        except RuntimeError:  # grpc says only "Failed to bind to address"
            raise ConfigError(
                f"cannot listen for gRPC on {address}: the port is in use, or the address is not this machine's.",
                hint="pick another --grpc-port (0: a free one), or stop the program using it.",
            ) from None
        await server.start()
        self._server = server
        log.debug("gRPC door listening on %s", address.rsplit(":", 1)[0] + f":{bound}")
        return bound

    def _listen(self, server: grpc.aio.Server, address: str) -> int:
        certfile, keyfile = self.settings.tls_certfile, self.settings.tls_keyfile
        if certfile is None:
            bound = server.add_insecure_port(address)
        else:
            if keyfile is None:
                raise ConfigError("tls_certfile is set but tls_keyfile is not.", hint="set both, or neither.")
            client_ca = self.settings.tls_client_ca  # mTLS: a client certificate signed by this CA, or no call
            self._client_ca = client_ca.read_bytes() if client_ca else None
            credentials = grpc.dynamic_ssl_server_credentials(
                self._configuration(read_pair(certfile, keyfile)),
                self._take_next_certificate,
                require_client_authentication=client_ca is not None,
            )
            bound = server.add_secure_port(address, credentials)
        if not bound:  # older grpcio returns 0 instead of raising
            raise RuntimeError("Failed to bind to address")
        return int(bound)

    def use_certificate(self, pair: CertPair) -> None:
        """Serve ``pair`` from the next TLS handshake on; open connections keep the certificate they have."""
        configuration = self._configuration(pair)
        with self._lock:
            self._next_certificate = configuration

    def _configuration(self, pair: CertPair) -> Any:
        return grpc.ssl_server_certificate_configuration([(pair.key_pem, pair.cert_pem)], self._client_ca)

    def _take_next_certificate(self) -> Any:
        """grpc calls this before every TLS handshake (on its own thread): a new configuration, or None."""
        with self._lock:
            configuration, self._next_certificate = self._next_certificate, None
        return configuration

    async def stop(self, grace: float) -> None:
        """Stop accepting calls; let those in flight finish for up to ``grace`` seconds, then cancel them."""
        self._draining.set()  # health watchers get NOT_SERVING and their streams end
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None


def _enable_reflection(server: grpc.aio.Server) -> None:
    """Server reflection over lanai's own descriptor pool (see ``scripts/build_grpc.py`` for why it has
    one), which also needs the health and reflection protocols' files to describe those services."""
    pool = inference_pb2.POOL
    for module in (health_pb2, reflection_pb2):
        try:
            pool.FindFileByName(module.DESCRIPTOR.name)
        except KeyError:
            pool.AddSerializedFile(module.DESCRIPTOR.serialized_pb)
    reflection.enable_server_reflection(SERVICE_NAMES, server, pool=pool)
