"""Which networks may talk to the box, and who a proxied request comes from."""

from __future__ import annotations

import pytest

from lanai.errors import ConfigError, PermissionDenied
from lanai.security.network import NetworkPolicy


@pytest.mark.parametrize(
    "address", ["192.168.1.20", "10.1.2.3", "172.20.0.5", "100.101.102.103", "169.254.9.9", "127.0.0.1",
                "::1", "fd12:3456::7", "fe80::1", "::ffff:192.168.1.20"],
)  # fmt: skip
def test_local_networks_are_served_by_default(address: str) -> None:
    NetworkPolicy().check(NetworkPolicy().client(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "203.0.113.9", "2001:db8::1", "::ffff:8.8.8.8"])
def test_other_networks_are_refused_with_a_hint(address: str) -> None:
    policy = NetworkPolicy()
    with pytest.raises(PermissionDenied, match="not on a network this box serves.*allowed_networks"):
        policy.check(policy.client(address))


def test_listed_networks_and_any() -> None:
    policy = NetworkPolicy(["192.168.7.0/24"])
    policy.check("192.168.7.9")
    with pytest.raises(PermissionDenied):
        policy.check("192.168.8.9")
    NetworkPolicy(["any"]).check("8.8.8.8")
    with pytest.raises(ConfigError, match="not a network"):
        NetworkPolicy(["192.168.7.0/33"])


def test_forwarded_for_is_believed_from_trusted_proxies_only() -> None:
    policy = NetworkPolicy(["local"], trusted_proxies=["127.0.0.1/32", "10.0.0.2/32"])
    assert policy.client("127.0.0.1", "8.8.8.8") == "8.8.8.8"  # the proxy on the box names an outsider
    assert policy.client("127.0.0.1", "8.8.8.8, 192.168.1.5, 10.0.0.2") == "192.168.1.5"  # the last untrusted hop
    assert policy.client("192.168.1.9", "127.0.0.1") == "192.168.1.9"  # a client naming itself loopback: ignored
    assert policy.client("127.0.0.1", "garbage") == "127.0.0.1"
    with pytest.raises(PermissionDenied):
        policy.check(policy.client("127.0.0.1", "8.8.8.8"))
