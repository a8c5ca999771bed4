"""``lanai serve``: one process, one event loop, the data plane and its doors.

:class:`Service` owns the lifecycle: it opens the HTTP and gRPC doors (and HAProxy's agent check), then
starts the data plane (loading the models; meanwhile readiness says loading); on SIGTERM or Ctrl-C it
stops both doors from accepting, lets the requests in flight finish (up to ``shutdown_timeout``), and
shuts the data plane down.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.http.server import HttpDoor, bind
from lanai.security.guard import Guard
from lanai.security.keys import KeyRing, ensure_admin_key
from lanai.security.pairing import desk_for
from lanai.security.reload import CertWatcher

__all__ = ["serve", "Service"]

log = logging.getLogger("lanai")

_KEY_USE_EVERY_S = 10.0


class Service:
    """The data plane and its doors. ``run()`` serves until ``stop()`` (from any thread) or a signal."""

    def __init__(self, plane: DataPlane, settings: Settings, *, http_host: str | None = None) -> None:
        self.plane = plane
        self.settings = settings
        self.keys = KeyRing(settings.home)
        self.guard = Guard(settings, self.keys, plane.metrics)
        self.pairing = desk_for(settings, self.keys)
        sock = bind(http_host or settings.host, settings.port)
        self.http = HttpDoor(plane, settings, sock, self.guard, self.pairing)
        self.http_port: int = self.http.sock.getsockname()[1]
        self.grpc_port: int | None = None
        self.started = threading.Event()
        """Set once every door is serving."""
        self.finished = threading.Event()
        """Set once ``run()`` has returned (or failed)."""
        self.advertiser: Any = None
        """The mDNS advertiser (lanai.discovery), while the box is advertised."""
        self.certificates = CertWatcher.for_settings(settings)
        """Under TLS: reloads (and renews) the served certificate without a restart."""
        self.follower: Any = None
        """The channel follower (``lanai follow``), when the box follows any."""
        self.agent: Any = None
        """HAProxy's agent check (``agent_port``), while it listens."""
        self.agent_port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    def stop(self) -> None:
        """Begin a drained shutdown; safe to call from any thread or a signal handler."""
        if self._loop is not None and self._stop is not None and not self.finished.is_set():
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:  # the loop closed meanwhile: it has stopped already
                pass

    async def run(self, *, handle_signals: bool = False) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._loop.add_signal_handler(sig, self._stop.set)
        http: asyncio.Task[None] | None = None
        grpc = None
        self.plane.lifecycle.begin()
        self.plane.recent_errors.install()
        try:
            if self.certificates is not None:
                await asyncio.to_thread(self.certificates.prepare)  # renewed now if due, before the doors load it
            # the doors open first, so that probes see "loading" (and requests get 503 with Retry-After)
            # while the models load; "listening on" is logged once they are loaded
            grpc = await self._start_grpc()
            http = asyncio.create_task(self.http.serve(), name="lanai-http")
            while not self.http.started:
                if http.done():
                    http.result()  # raises what stopped it
                    raise RuntimeError("the HTTP server stopped before it started")
                await asyncio.sleep(0.005)
            await self._start_agent()
            await self.plane.start()
            self._log_addresses()
            self.started.set()
            self._advertise()
            stop = asyncio.create_task(self._stop.wait())
            background = [asyncio.create_task(self._note_key_use()), *self._watch_certificates(grpc)]
            background += self._follow()
            await asyncio.wait({http, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            for task in background:
                task.cancel()
            log.info("draining: finishing the requests in flight")
        finally:
            if self.follower is not None:
                await self.follower.close()
            self.plane.drain()  # readiness and the agent check say so while the doors finish
            await self._drain(http, grpc)
            if self.agent is not None:
                await self.agent.stop()
            self.http.sock.close()
            await self.plane.shutdown()
            try:
                await asyncio.to_thread(self.keys.flush_used)
            except OSError as exc:  # a full or read-only store costs the last-used times, not the exit
                log.warning("could not note when keys were last used: %s", exc)
            self.plane.lifecycle.end()
            self.plane.recent_errors.remove()
            self.finished.set()

    async def _note_key_use(self) -> None:
        """Write down now and then when each key was last used (``lanai keys list`` shows it)."""
        while True:
            await asyncio.sleep(_KEY_USE_EVERY_S)
            try:
                await asyncio.to_thread(self.keys.flush_used)
            except OSError as exc:  # a full disk must not stop the serving
                log.warning("could not note when keys were last used: %s", exc)

    def _watch_certificates(self, grpc: Any) -> list[asyncio.Task[None]]:
        """Under TLS, both doors switch to a renewed certificate as soon as its files are in place."""
        if self.certificates is None:
            return []
        self.certificates.subscribe(self.http.use_certificate)
        if grpc is not None:
            self.certificates.subscribe(grpc.use_certificate)
        if self.advertiser is not None:
            self.certificates.subscribe(self.advertiser.use_certificate)  # its id is the certificate's
        return [asyncio.create_task(self.certificates.run(), name="lanai-certificates")]

    async def _drain(self, http: asyncio.Task[None] | None, grpc: Any) -> None:
        """Stop both doors from accepting and wait for their requests in flight (up to shutdown_timeout)."""
        self.http.stop()
        waits: list[Any] = [http] if http is not None else []
        if grpc is not None:
            waits.append(grpc.stop(self.settings.shutdown_timeout))
        if self.advertiser is not None:
            waits.append(self.advertiser.drain())  # TXT state=draining while the doors finish
        for outcome in await asyncio.gather(*waits, return_exceptions=True):
            if isinstance(outcome, Exception):
                log.error("a door did not stop cleanly: %s", outcome, exc_info=outcome)
        if self.advertiser is not None:
            await self.advertiser.stop()  # goodbye packets: browsers forget the box at once
            self.advertiser = None

    def _advertise(self) -> None:
        """Advertise the box over mDNS (in the background: probing for the name takes a second or two)."""
        if not self.settings.discovery:
            return
        from lanai.discovery.advertise import Advertiser

        self.advertiser = Advertiser()
        self.advertiser.start_soon(self.plane, self.settings, self.http_port, self.grpc_port)

    def _follow(self) -> list[asyncio.Task[None]]:
        """Follow the channels of ``lanai follow`` and lanai.toml's ``[[follow]]`` tables, if any."""
        from lanai.fleet.follow import Follower, follow_entries

        entries = follow_entries(self.settings)
        if not entries:
            return []
        self.follower = Follower(self.plane, entries, self.settings)
        log.info("following %s", ", ".join(f"{e.model} ← {e.reference}" for e in entries))
        return [asyncio.create_task(self.follower.run(), name="lanai-follow")]

    async def _start_agent(self) -> None:
        if not self.settings.agent_port:
            return
        from lanai.agent import AgentCheck

        self.agent = AgentCheck(self.plane)
        self.agent_port = await self.agent.start(
            self.settings.agent_host or self.settings.host, self.settings.agent_port
        )

    async def _start_grpc(self) -> Any:
        if not self.settings.grpc:
            return None
        from lanai.grpc import available

        if not available():
            log.info("gRPC is off: its runtime is not installed (pip install 'lanai[grpc]').")
            return None
        from lanai.grpc.server import GrpcDoor

        door = GrpcDoor(self.plane, self.settings, self.guard)
        self.grpc_port = await door.start(self.settings.host, self.settings.grpc_port)
        return door

    def _log_addresses(self) -> None:
        address = self.http.sock.getsockname()[0]
        shown = f"[{address}]" if ":" in address else address
        scheme = "https" if self.settings.tls_certfile else "http"
        log.info("lanai listening on %s://%s:%d (store: %s)", scheme, shown, self.http_port, self.plane.store.root)
        local = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(address, shown)
        self.plane.lifecycle.listening(f"{scheme}://{local}:{self.http_port}")
        if self.grpc_port is not None:
            log.info("gRPC (Open Inference Protocol) on %s:%d", shown, self.grpc_port)
        # on every interface, the name the box has on the LAN is what a browser elsewhere would use
        host = socket.gethostname() if address in ("0.0.0.0", "::") else shown
        log.info("web console: %s://%s:%d/ (API reference: /docs)", scheme, host, self.http_port)


def run_loop(main: Any) -> None:
    """Run the coroutine ``main`` on uvloop where it is installed, else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main)
    else:  # pragma: no cover
        uvloop.install()
        asyncio.run(main)


def serve(config_file: Path | None = None, cli: Mapping[str, Any] | None = None) -> int:
    """Serve until SIGTERM or Ctrl-C; in-flight requests finish first (up to shutdown_timeout)."""
    from lanai.bundled import ensure_default_model
    from lanai.config import load_settings
    from lanai.store import Store

    settings = load_settings(config_file, cli).with_store_tls()
    logging.getLogger().setLevel(settings.log_level.upper())
    store = Store(settings.home)
    ensure_default_model(store)
    created = ensure_admin_key(KeyRing(settings.home))
    if created is not None:
        log.info("first run: created an admin key in %s (readable by this user only); send it as "
                 "'Authorization: Bearer <key>' for admin actions from other machines", created)  # fmt: skip
    service = Service(DataPlane(store, settings), settings)
    run_loop(service.run(handle_signals=True))
    return 0
