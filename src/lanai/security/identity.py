"""Who a client certificate says its holder is: the part of a verified certificate that access control reads.

A door hands over the certificate the TLS handshake has already verified against the store's CA (HTTP:
the connection's peer certificate; gRPC: the call's auth context); this module only reads it. The role
is the certificate's ``OU`` (``infer`` or ``admin``, as ``lanai certs client`` and pairing write it),
the name its ``CN``, and its SHA-256 fingerprint is what a revocation names.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from lanai.security.certs import fingerprint

__all__ = ["PeerCertificate"]

_ROLES = ("infer", "admin")


@dataclass(frozen=True)
class PeerCertificate:
    """A verified client certificate: its holder's name, role (None: it names none lanai knows) and
    fingerprint (SHA-256, colon-separated upper-case hex, as ``lanai certs`` prints it)."""

    name: str
    role: Literal["infer", "admin"] | None
    fingerprint: str

    @classmethod
    def from_der(cls, der: bytes) -> PeerCertificate:
        return _parse(der)

    @classmethod
    def from_pem(cls, pem: bytes) -> PeerCertificate:
        return _parse_pem(pem)


@lru_cache(maxsize=256)
def _parse(der: bytes) -> PeerCertificate:
    """Parsed once per certificate: a client reconnecting, or making many gRPC calls, costs a lookup."""
    cert = x509.load_der_x509_certificate(der)
    units = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)]
    names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    role = next((str(u) for u in units if u in _ROLES), None)
    sha256 = fingerprint(cert)
    name = str(names[0]) if names else sha256.replace(":", "").lower()[:16]
    return PeerCertificate(name, role, sha256)  # type: ignore[arg-type]


@lru_cache(maxsize=256)
def _parse_pem(pem: bytes) -> PeerCertificate:
    return _parse(x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER))
