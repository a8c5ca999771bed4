"""Opening a zeroconf instance without leaking its sockets when it fails."""

from __future__ import annotations

import gc
import ipaddress
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zeroconf.asyncio import AsyncZeroconf

__all__ = ["open_zeroconf", "local_addresses"]


def open_zeroconf(interfaces: Sequence[str] | None, ip_version: Any = None, *, unicast: bool = False) -> AsyncZeroconf:
    """An ``AsyncZeroconf`` on ``interfaces`` (addresses; None: all); ``unicast``: one that asks from a port
    of its own instead of listening on 5353. Raises OSError when multicast DNS cannot work there (an
    address no interface has, port 5353 refused)."""
    from zeroconf import InterfaceChoice
    from zeroconf.asyncio import AsyncZeroconf

    if interfaces:
        known = local_addresses()
        missing = [a for a in interfaces if _plain(a) not in known]
        if missing:
            raise OSError(f"no interface of this machine has the address {', '.join(missing)}")
    try:
        chosen = list(interfaces) if interfaces else InterfaceChoice.All
        return AsyncZeroconf(interfaces=chosen, ip_version=ip_version, unicast=unicast)
    except OSError as exc:
        message = f"{exc.strerror or exc} (multicast DNS on {', '.join(interfaces or ['all interfaces'])})"
    # zeroconf leaves the sockets it opened before the failure to the garbage collector (a ResourceWarning):
    # collect them now, quietly.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    raise OSError(message)


def local_addresses() -> set[str]:
    """Every address of this machine's interfaces (IPv6 without the scope)."""
    import ifaddr

    found = set()
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            found.add(_plain(ip.ip[0] if isinstance(ip.ip, tuple) else ip.ip))
    return found


def _plain(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address.split("%")[0]))
    except ValueError:
        return address
