"""Find lanai boxes on the LAN over mDNS/DNS-SD: ``discover()`` → a list of :class:`Box`.

    from lanai.client import Client
    from lanai.discovery import discover

    boxes = [box for box in discover(timeout=2.0) if box.state == "ready"]
    with Client([box.base_url for box in boxes]) as lanai: ...

Only zeroconf and the record format: nothing of the server is imported.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from lanai.discovery._zeroconf import open_zeroconf
from lanai.discovery.records import SERVICE_TYPE, parse_txt

__all__ = ["Box", "discover", "discover_async"]

_RESOLVE_S = 1.0
"""Extra time, after browsing, to ask for the records a box did not send along."""


@dataclass(frozen=True)
class Box:
    """One lanai box that answered on the LAN."""

    name: str
    """Its instance name (the box's hostname, unless two boxes share one)."""
    host: str
    """Its mDNS host name, e.g. ``pi5.local.``."""
    addresses: tuple[str, ...]
    port: int
    """The HTTP port."""
    id: str
    """The TLS certificate's SHA-256 (first 16 hex digits) when ``tls``, else the box's random id."""
    version: str
    grpc_port: int | None
    tls: bool
    tasks: tuple[str, ...]
    models: tuple[str, ...]
    state: str
    """``ready`` or ``draining`` (pick another box)."""
    more_models: int = 0
    """Models the record left out for size: ask the box (``/v2/repository/index``)."""

    @property
    def address(self) -> str:
        """The address to call: the first IPv4 one, else the first IPv6 one, else the host name."""
        for address in self.addresses:
            if ipaddress.ip_address(address.split("%")[0]).version == 4:
                return address
        return self.addresses[0] if self.addresses else self.host.rstrip(".")

    @property
    def base_url(self) -> str:
        """E.g. ``http://192.168.1.20:8000``: what :class:`lanai.client.Client` takes."""
        host = self.address
        if ":" in host:
            host = f"[{host}]"
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def grpc_target(self) -> str | None:
        """E.g. ``192.168.1.20:8001`` for a gRPC channel (None when the box serves no gRPC)."""
        if self.grpc_port is None:
            return None
        host = self.address
        return f"[{host}]:{self.grpc_port}" if ":" in host else f"{host}:{self.grpc_port}"


def discover(timeout: float = 2.0, *, interfaces: Sequence[str] | None = None) -> list[Box]:
    """The boxes that answer within ``timeout`` seconds (plus up to a second to resolve them), by name.
    Callable from a running event loop too (it then browses in a worker thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(discover_async(timeout, interfaces=interfaces))
    with ThreadPoolExecutor(1, thread_name_prefix="lanai-discover") as pool:
        return pool.submit(asyncio.run, discover_async(timeout, interfaces=interfaces)).result()


async def discover_async(timeout: float = 2.0, *, interfaces: Sequence[str] | None = None) -> list[Box]:
    """As :func:`discover`, on the running event loop."""
    # Two ways of asking at once, for answers to reach us wherever we run:
    # - one-shot queries from a port of our own (RFC 6762 §5.1): boxes answer straight to it, at once,
    #   even where other mDNS sockets share port 5353 on this machine (the kernel would hand a unicast
    #   answer to 5353 to only one of them) and without the one-second limit on repeating a multicast;
    # - the usual mDNS socket on port 5353, for networks whose firewalls let only mDNS's port through.
    outcomes = await asyncio.gather(
        _browse(timeout, interfaces, unicast=True), _browse(timeout, interfaces, unicast=False), return_exceptions=True
    )
    found: dict[str, Box] = {}
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
            raise outcome
    failures = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
    if len(failures) == len(outcomes):
        raise failures[0]
    for outcome in outcomes:
        if isinstance(outcome, list):
            for box in outcome:
                found.setdefault(box.name, box)
    return sorted(found.values(), key=lambda box: box.name)


async def _browse(timeout: float, interfaces: Sequence[str] | None, *, unicast: bool) -> list[Box]:
    from zeroconf import ServiceStateChange
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo

    names: set[str] = set()

    def changed(zeroconf: Any, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change is ServiceStateChange.Removed:
            names.discard(name)
        else:
            names.add(name)

    azc = open_zeroconf(interfaces, unicast=unicast)
    try:
        browser = AsyncServiceBrowser(azc.zeroconf, SERVICE_TYPE, handlers=[changed])
        try:
            await asyncio.sleep(timeout)
        finally:
            await browser.async_cancel()
        infos = [AsyncServiceInfo(SERVICE_TYPE, name) for name in sorted(names)]
        deadline = time.monotonic() + _RESOLVE_S
        resolved = await asyncio.gather(
            *(info.async_request(azc.zeroconf, max(1, (deadline - time.monotonic()) * 1000)) for info in infos)
        )
    finally:
        await azc.async_close()
    return [_box(info) for info, ok in zip(infos, resolved) if ok and info.port]


def _box(info: Any) -> Box:
    advert = parse_txt(info.properties)
    name = info.name
    if name.endswith("." + SERVICE_TYPE):
        name = name[: -len(SERVICE_TYPE) - 1]
    return Box(
        name=name,
        host=info.server or "",
        addresses=tuple(info.parsed_scoped_addresses()),
        port=info.port,
        id=advert.id,
        version=advert.version,
        grpc_port=advert.grpc_port,
        tls=advert.tls,
        tasks=advert.tasks,
        models=advert.models,
        state=advert.state,
        more_models=advert.more_models,
    )
