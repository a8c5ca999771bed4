"""Advertise a running box over mDNS/DNS-SD (``_lanai._tcp.local.``), so apps on the LAN can find it.

The :class:`Advertiser` registers one service, ``<hostname>._lanai._tcp.local.``, whose SRV points at the
HTTP port and whose TXT record (see :mod:`lanai.discovery.records`) says what the box serves. It checks
the data plane every few seconds and republishes the TXT record when the loaded models change; ``drain()``
marks the box as draining and ``stop()`` sends the goodbye packets. Discovery is a convenience: when
multicast does not work (no interface allows it, port 5353 is taken), the box serves without it and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import ipaddress
import logging
import os
import secrets
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lanai
from lanai.discovery._zeroconf import open_zeroconf
from lanai.discovery.records import SERVICE_TYPE, Advert, build_txt, instance_label

if TYPE_CHECKING:
    from zeroconf import ServiceInfo
    from zeroconf.asyncio import AsyncZeroconf

    from lanai.config import Settings
    from lanai.dataplane import DataPlane

__all__ = ["Advertiser", "box_id", "BOX_ID_FILE"]

log = logging.getLogger(__name__)

BOX_ID_FILE = "box-id"
_CHECK_EVERY_S = 2.0
_STOP_TIMEOUT_S = 3.0
_WILDCARDS = ("", "0.0.0.0", "::")


class Advertiser:
    """Registers this box's ``_lanai._tcp.local.`` service while it serves.

    ``interfaces``: addresses of the interfaces to advertise on (default: all; ``["127.0.0.1"]`` in
    tests); ``hostname``: the instance name's label (default: this machine's hostname).
    """

    def __init__(
        self,
        *,
        interfaces: Sequence[str] | None = None,
        hostname: str | None = None,
        check_every: float = _CHECK_EVERY_S,
    ) -> None:
        self.interfaces = list(interfaces) if interfaces else None
        self.label = instance_label(hostname or socket.gethostname())
        self.check_every = check_every
        self.info: ServiceInfo | None = None
        """The service as last published (None while not advertising)."""
        self._zc: AsyncZeroconf | None = None
        self._plane: DataPlane | None = None
        self._base: Advert | None = None
        self._updating: asyncio.Future[bool] | None = None
        self._draining = False
        self._checker: asyncio.Task[None] | None = None
        self._starting: asyncio.Task[bool] | None = None

    @property
    def name(self) -> str | None:
        """The full service instance name (it may differ from the hostname after a name conflict)."""
        return None if self.info is None else self.info.name

    async def start(self, plane: DataPlane, settings: Settings, http_port: int, grpc_port: int | None) -> bool:
        """Register the service; False (logged) when multicast DNS is not usable here."""
        from zeroconf import IPVersion, ServiceInfo

        self._plane = plane
        self._base = Advert(
            id=box_id(settings),
            version=lanai.__version__,
            http_port=http_port,
            grpc_port=grpc_port,
            tls=settings.tls_certfile is not None,
        )
        interfaces, addresses = _where(self.interfaces, settings.host)
        version = IPVersion.V4Only
        if any(":" in a for a in addresses):
            version = IPVersion.All if any(":" not in a for a in addresses) else IPVersion.V6Only
        info = ServiceInfo(
            SERVICE_TYPE,
            f"{self.label}.{SERVICE_TYPE}",
            port=http_port,
            properties=build_txt(self._advert()),
            server=f"{self.label}.local.",
            parsed_addresses=addresses,
        )
        try:
            self._zc = open_zeroconf(interfaces, version)
            await _settle(await self._zc.async_register_service(info, allow_name_change=True))
        except asyncio.CancelledError:  # stopped while probing for the name
            await self._close()
            raise
        except Exception as exc:  # discovery must never stop the serving
            log.warning("not advertising on the LAN (mDNS): %s; clients need the address", exc)
            await self._close()
            return False
        self.info = info
        self._checker = asyncio.create_task(self._check(), name="lanai-discovery")
        log.info("advertising %s over mDNS (%s)", info.name, ", ".join(addresses))
        return True

    def start_soon(self, plane: DataPlane, settings: Settings, http_port: int, grpc_port: int | None) -> None:
        """``start()`` in the background (probing for the name takes a second or two): for ``lanai serve``,
        whose shutdown must not wait for it. ``stop()`` cancels it if it has not finished."""
        self._starting = asyncio.create_task(
            self.start(plane, settings, http_port, grpc_port), name="lanai-discovery-start"
        )

    async def update(self) -> bool:
        """Republish the TXT record if what it says changed (models loaded or unloaded, draining);
        True if it did."""
        if self._zc is None or self.info is None:
            return False
        properties = build_txt(self._advert())
        if {k.decode(): (v or b"").decode() for k, v in self.info.properties.items()} == properties:
            return False
        from zeroconf import ServiceInfo

        info = ServiceInfo(
            SERVICE_TYPE,
            self.info.name,
            port=self.info.port,
            properties=properties,
            server=self.info.server,
            addresses=self.info.addresses_by_version(_all_versions()),
        )
        try:
            await _settle(await self._zc.async_update_service(info))
        except Exception as exc:
            log.warning("could not update the mDNS record: %s", exc)
            return False
        self.info = info
        return True

    def use_certificate(self, pair: Any) -> None:
        """The box serves a renewed certificate (a ``lanai.security.reload.CertPair``): the id follows it."""
        if self._base is None:
            return
        self._base = dataclasses.replace(self._base, id=pair.fingerprint.replace(":", "").lower()[:16])
        self._updating = asyncio.ensure_future(self.update())

    async def drain(self) -> None:
        """Say the box is draining (it finishes its requests and stops): clients should pick another."""
        self._draining = True
        await self.update()

    async def stop(self) -> None:
        """Unregister (goodbye packets, so browsers forget the box at once) and close."""
        if self._starting is not None:
            starting, self._starting = self._starting, None
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await starting
        if self._checker is not None:
            self._checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checker
            self._checker = None
        if self._zc is not None and self.info is not None:
            try:
                await asyncio.wait_for(_settle(await self._zc.async_unregister_service(self.info)), _STOP_TIMEOUT_S)
            except Exception as exc:
                log.warning("could not unregister the mDNS record: %s", exc)
        self.info = None
        await self._close()

    async def _close(self) -> None:
        if self._zc is not None:
            zc, self._zc = self._zc, None
            try:
                await asyncio.wait_for(zc.async_close(), _STOP_TIMEOUT_S)
            except Exception as exc:
                log.warning("could not close mDNS: %s", exc)

    async def _check(self) -> None:
        while True:
            await asyncio.sleep(self.check_every)
            await self.update()

    def _advert(self) -> Advert:
        from dataclasses import replace

        assert self._base is not None and self._plane is not None
        models = self._plane.models
        draining = self._draining or not self._plane.ready()
        return replace(
            self._base,
            tasks=tuple(sorted({m.info.task for m in models.values()})),
            models=tuple(sorted(models)),
            state="draining" if draining else "ready",
        )


def box_id(settings: Settings) -> str:
    """The id in the TXT record: the TLS certificate's SHA-256 (first 16 hex digits) when TLS is on, so a
    client can match it with the certificate it sees; else a random id kept in ``<home>/box-id``."""
    if settings.tls_certfile is not None:
        try:
            from cryptography import x509
            from cryptography.hazmat.primitives.serialization import Encoding

            cert = x509.load_pem_x509_certificate(Path(settings.tls_certfile).read_bytes())
            return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()[:16]
        except (OSError, ValueError) as exc:
            log.warning("could not read %s for the box id: %s", settings.tls_certfile, exc)
    return _stored_id(Path(settings.home) / BOX_ID_FILE)


def _stored_id(path: Path) -> str:
    found = _read_id(path)
    if found is not None:
        return found
    new = secrets.token_hex(8)
    temporary = path.with_name(f".{path.name}.{new}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(new + "\n", encoding="ascii")
        try:
            os.link(temporary, path)  # whole, and only if there is none yet: of two racing, one id wins
        except FileExistsError:
            found = _read_id(path)
            if found is not None:
                return found
            os.replace(temporary, path)  # a damaged file
        except OSError:  # a file system without hard links
            os.replace(temporary, path)
    except OSError as exc:
        log.warning("could not keep the box id in %s (it changes on restart): %s", path, exc)
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink()
    return new


def _read_id(path: Path) -> str | None:
    try:
        found = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return found if len(found) == 16 and all(c in "0123456789abcdef" for c in found) else None


def _where(interfaces: list[str] | None, host: str) -> tuple[list[str] | None, list[str]]:
    """The interfaces to use (None: all) and the addresses to advertise."""
    if interfaces:
        return interfaces, list(interfaces)
    if host not in _WILDCARDS:
        with contextlib.suppress(ValueError):
            address = ipaddress.ip_address(host)
            return [str(address)], [str(address)]
    return None, _lan_addresses(ipv6=host == "::")


def _lan_addresses(*, ipv6: bool) -> list[str]:
    """This machine's addresses, loopback and link-local last resorts only."""
    import ifaddr

    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, tuple):
                if not ipv6:
                    continue
                text = ip.ip[0]
            else:
                text = ip.ip
            address = ipaddress.ip_address(text)
            if not (address.is_loopback or address.is_link_local) and text not in found:
                found.append(text)
    return found or ["127.0.0.1"]


def _all_versions() -> Any:
    from zeroconf import IPVersion

    return IPVersion.All


async def _settle(task: Any) -> None:
    """zeroconf's async_*_service return a task that finishes the announcements: wait for it."""
    if isinstance(task, asyncio.Future):
        await task
