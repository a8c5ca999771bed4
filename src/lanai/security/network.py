"""Which addresses may talk to the box at all, and who a proxied request really comes from.

By default only the local networks may: the private IPv4 ranges, carrier-grade NAT (where Tailscale and
similar overlays live), link-local and loopback, and IPv6's unique-local, link-local and loopback. A box
that must answer the wider world lists its networks in ``allowed_networks`` (``"any"`` allows all).

Behind a reverse proxy every request seems to come from the proxy; when the peer is one of
``trusted_proxies``, the client is the last address in ``X-Forwarded-For`` that is not itself a trusted
proxy. A header from anyone else is ignored: it is trivial to forge.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

from lanai.errors import ConfigError, PermissionDenied

__all__ = ["NetworkPolicy", "LOCAL_NETWORKS"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

LOCAL_NETWORKS = (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "127.0.0.0/8",
    "fc00::/7", "fe80::/10", "::1/128",
)  # fmt: skip


def _networks(specs: Iterable[str], setting: str) -> tuple[Network, ...] | None:
    """Parsed networks; None for ``any``; ``local`` stands for LOCAL_NETWORKS."""
    found: list[Network] = []
    for spec in specs:
        spec = spec.strip()
        if spec == "any":
            return None
        for item in LOCAL_NETWORKS if spec == "local" else (spec,):
            try:
                found.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ConfigError(
                    f"{setting} has {item!r}, which is not a network.",
                    hint='use e.g. "192.168.1.0/24", "local" or "any".',
                ) from None
    return tuple(found)


def _address(text: str | None) -> Address | None:
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text.strip().strip("[]").split("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class NetworkPolicy:
    """``allowed``: the networks clients may come from; ``trusted_proxies``: peers whose X-Forwarded-For
    is believed."""

    def __init__(self, allowed: Iterable[str] = ("local",), trusted_proxies: Iterable[str] = ()) -> None:
        self._allowed = _networks(allowed, "allowed_networks")
        self._proxies = _networks(trusted_proxies, "trusted_proxies") or ()
        self._check = lru_cache(maxsize=4096)(self._allows)

    def client(self, peer: str | None, forwarded_for: str | None = None) -> str | None:
        """The client's address: ``peer``, or, from a trusted proxy, the last untrusted hop it names."""
        address = _address(peer)
        if address is None or not forwarded_for or not self._is_proxy(address):
            return str(address) if address is not None else peer
        for hop in reversed(forwarded_for.split(",")):
            named = _address(hop)
            if named is None:
                break  # a malformed entry: trust nothing before it
            if not self._is_proxy(named):
                return str(named)
        return str(address)

    def check(self, client: str | None) -> None:
        """PermissionDenied for a client outside the allowed networks."""
        if self._allowed is None or client is None:  # "any", or no address (a unix socket, a test transport)
            return
        if not self._check(client):
            raise PermissionDenied(
                f"{client} is not on a network this box serves.",
                hint="ask its admin to add your network to allowed_networks in lanai.toml.",
            )

    def _allows(self, client: str) -> bool:
        address = _address(client)
        return address is not None and any(address in net for net in self._allowed or ())

    def _is_proxy(self, address: Address) -> bool:
        return any(address in net for net in self._proxies)
