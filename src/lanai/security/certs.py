"""A small certificate authority for one box and its clients, made with the ``cryptography`` package.

``lanai certs init`` makes the CA and the server's certificate; ``lanai certs renew`` makes a new server key
and certificate from the same CA (so clients that trust the CA never notice); ``lanai certs client NAME``
issues a client certificate (PEM, and PKCS#12 that Windows imports). Everything lives in ``<store>/tls/``:

    tls/ca.pem, tls/ca.key                 the authority (the key readable by the server's user only)
    tls/server.pem, tls/server.key         what ``--tls`` serves
    tls/clients/NAME.pem, .key, .p12       a client's certificate, for ``--mtls``

Keys are ECDSA P-256: small, fast to verify on a Pi, and accepted by Windows, .NET, browsers and gRPC.
A client certificate names its role in its subject (``OU=infer`` or ``OU=admin``), so a door that sees
it can treat it as a key of that role.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lanai.errors import ConfigError
from lanai.store._fs import replace_atomic

__all__ = [
    "TlsFiles", "init_authority", "renew_server", "renew_if_due", "issue_client", "certify_client_key", "fingerprint",
    "local_names", "describe_certificate",
    "ClientBundle", "CertificateInfo", "RENEW_WITHIN",
]  # fmt: skip

_CA_DAYS = 3650
_SERVER_DAYS = 397  # what browsers and Apple accept for a server certificate
RENEW_WITHIN = datetime.timedelta(days=30)
"""A server that holds its CA's key renews its own certificate this long before it expires."""
_ORG = "lanai"


@dataclass(frozen=True)
class TlsFiles:
    """Where a store keeps its TLS material."""

    root: Path

    @classmethod
    def of(cls, home: Path) -> TlsFiles:
        return cls(home / "tls")

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.root / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.root / "server.key"

    def client(self, name: str, suffix: str) -> Path:
        return self.root / "clients" / f"{name}{suffix}"


@dataclass(frozen=True)
class ClientBundle:
    cert: Path
    key: Path
    p12: Path
    p12_password: str
    fingerprint: str


def local_names() -> tuple[list[str], list[str]]:
    """This box's DNS names (hostname, hostname.local, localhost) and its addresses (with loopback)."""
    host = socket.gethostname().split(".")[0] or "lanai"
    names = [host, f"{host}.local", "localhost"]
    addresses = {"127.0.0.1", "::1"}
    try:
        for info in socket.getaddrinfo(host, None):
            addresses.add(str(info[4][0]).split("%")[0])
    except OSError:
        pass
    return names, sorted(addresses)


def init_authority(
    files: TlsFiles, *, names: list[str] | None = None, addresses: list[str] | None = None, force: bool = False
) -> str:
    """Make the CA and a server certificate for ``names`` and ``addresses`` (default: this box's);
    returns the server certificate's SHA-256 fingerprint. An existing CA is kept unless ``force``."""
    if files.ca_cert.exists() and not force:
        ca_key = _read_key(files.ca_key)
        ca_cert = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _authority(ca_key)
        _write(files.ca_key, _key_pem(ca_key), private=True)
        _write(files.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))
    default_names, default_addresses = local_names()
    return _issue_server(files, ca_cert, ca_key, names or default_names, addresses or default_addresses, _SERVER_DAYS)


def renew_server(
    files: TlsFiles, *, names: list[str] | None = None, addresses: list[str] | None = None, days: int = _SERVER_DAYS
) -> str:
    """A new server key and certificate from the store's existing CA, for ``names`` and ``addresses``
    (default: those of the current certificate); returns its SHA-256 fingerprint. Clients that trust the
    CA keep working; a running server picks the new pair up by itself (``lanai.security.reload``)."""
    if days < 1:
        raise ConfigError(
            f"a certificate valid for {days} days is no use.", hint="give --days 1 or more (default 397)."
        )
    ca_cert, ca_key = _authority_of(files)
    current_names, current_addresses = _current_sans(files)
    default_names, default_addresses = local_names()
    names = names or current_names or default_names
    addresses = addresses or current_addresses or ([] if current_names else default_addresses)
    return _issue_server(files, ca_cert, ca_key, names, addresses, days)


def renew_if_due(files: TlsFiles, within: datetime.timedelta = RENEW_WITHIN) -> str | None:
    """Renew the server certificate (same names and addresses) if it expires within ``within``; returns
    the new fingerprint, or None when it is not due yet or there is no CA key to sign with."""
    if not files.ca_key.is_file() or not files.server_cert.is_file():
        return None
    cert = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    if cert.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc) > within:
        return None
    return renew_server(files)


def issue_client(files: TlsFiles, name: str, role: str = "infer", *, days: int = 365) -> ClientBundle:
    """A client certificate for ``name`` with ``role``, signed by the store's CA, as PEM and PKCS#12."""
    if role not in ("infer", "admin"):
        raise ConfigError(f"role {role!r} is not infer or admin.")
    ca_cert, ca_key = _authority_of(files)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _client(ca_cert, ca_key, name, role, key.public_key(), days)
    password = secrets.token_urlsafe(12)
    # Windows (certutil, the import wizard, .NET) reads PKCS#12 made with SHA-1 and 3DES; newer suites
    # fail on older Windows, so the bundle uses those, under a random password printed once.
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(50000)
        .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
        .hmac_hash(hashes.SHA1())
        .build(password.encode())
    )
    p12 = pkcs12.serialize_key_and_certificates(name.encode(), key, cert, [ca_cert], encryption)
    bundle = ClientBundle(files.client(name, ".pem"), files.client(name, ".key"), files.client(name, ".p12"),
                          password, fingerprint(cert))  # fmt: skip
    _write(bundle.key, _key_pem(key), private=True)
    _write(bundle.cert, cert.public_bytes(serialization.Encoding.PEM))
    _write(bundle.p12, p12, private=True)
    return bundle


def certify_client_key(files: TlsFiles, name: str, role: str, public_key_pem: bytes, *, days: int = 365) -> str:
    """A client certificate (PEM) for a public key a device sent (pairing: its private key never leaves
    it), signed by the store's CA. ConfigError for a key that is not EC P-256."""
    if role not in ("infer", "admin"):
        raise ConfigError(f"role {role!r} is not infer or admin.")
    try:
        public_key = serialization.load_pem_public_key(public_key_pem)
    except ValueError:
        raise ConfigError("the public key is not a PEM public key.", hint="send an EC P-256 key as PEM.") from None
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(public_key.curve, ec.SECP256R1):
        raise ConfigError("the public key is not an EC P-256 key.", hint="send an EC P-256 key as PEM.")
    ca_cert, ca_key = _authority_of(files)
    return _client(ca_cert, ca_key, name, role, public_key, days).public_bytes(serialization.Encoding.PEM).decode()


def _client(
    ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, name: str, role: str,
    public_key: ec.EllipticCurvePublicKey, days: int,
) -> x509.Certificate:  # fmt: skip
    """A client certificate that names its holder's role in OU (what a door reads as its role)."""
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG),
                         x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
                         x509.NameAttribute(NameOID.COMMON_NAME, name)])  # fmt: skip
    return (
        _builder(subject, ca_cert.subject, public_key, days, not_after=ca_cert.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _authority_of(files: TlsFiles) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    if not files.ca_key.exists():
        raise ConfigError("this store has no certificate authority yet.", hint="run: lanai certs init")
    return x509.load_pem_x509_certificate(files.ca_cert.read_bytes()), _read_key(files.ca_key)


def _current_sans(files: TlsFiles) -> tuple[list[str], list[str]]:
    """The DNS names and IP addresses of the current server certificate (none if there is none)."""
    if not files.server_cert.is_file():
        return [], []
    cert = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return sans.get_values_for_type(x509.DNSName), [str(a) for a in sans.get_values_for_type(x509.IPAddress)]


def _issue_server(
    files: TlsFiles, ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
    names: list[str], addresses: list[str], days: int,
) -> str:  # fmt: skip
    """A new server key and certificate, written key first: a server that sees the new certificate
    beside the old key (or the reverse) refuses the pair until both are in place."""
    server_key = ec.generate_private_key(ec.SECP256R1())
    cert = _server(ca_cert, ca_key, server_key, names, addresses, days)
    _write(files.server_key, _key_pem(server_key), private=True)
    _write(files.server_cert, cert.public_bytes(serialization.Encoding.PEM))
    return fingerprint(cert)


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate, as colon-separated hex pairs (what Windows and browsers show)."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


@dataclass(frozen=True)
class CertificateInfo:
    """What a person checks of a certificate: which one it is, whose, and until when."""

    fingerprint: str
    subject: str
    issuer: str
    not_after: datetime.datetime


def describe_certificate(certfile: Path) -> CertificateInfo:
    """The first (leaf) certificate in the PEM file ``certfile``; ConfigError if there is none."""
    try:
        cert = x509.load_pem_x509_certificates(certfile.read_bytes())[0]
    except OSError as exc:
        raise ConfigError(f"cannot read the certificate {certfile}: {exc.strerror}.") from None
    except ValueError:
        raise ConfigError(f"{certfile} holds no PEM certificate.", hint="lanai certs renew writes a new one.") from None
    return CertificateInfo(fingerprint(cert), cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(),
                           cert.not_valid_after_utc)  # fmt: skip


def _authority(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"lanai CA on {socket.gethostname()}")])  # fmt: skip
    return (
        _builder(name, name, key, _CA_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _server(
    ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, key: ec.EllipticCurvePrivateKey,
    names: list[str], addresses: list[str], days: int,
) -> x509.Certificate:  # fmt: skip
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    try:
        sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    except ValueError as exc:
        raise ConfigError(f"{exc}.", hint="give --address as an IPv4 or IPv6 address, e.g. 192.168.1.20.") from None
    common_name = (names or addresses)[0]
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG),
                         x509.NameAttribute(NameOID.COMMON_NAME, common_name)])  # fmt: skip
    return (
        _builder(subject, ca_cert.subject, key, days, not_after=ca_cert.not_valid_after_utc)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey, days: int,
    not_after: datetime.datetime | None = None,
) -> x509.CertificateBuilder:  # fmt: skip
    """``days`` from now, but never past ``not_after`` (a certificate outliving its CA is refused anyway)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    expires = now + datetime.timedelta(days=days)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key if isinstance(key, ec.EllipticCurvePublicKey) else key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # clocks on a LAN disagree a little
        .not_valid_after(min(expires, not_after) if not_after is not None else expires)
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _read_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{path} is not an EC key lanai made.", hint="run: lanai certs init --force")
    return key


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    """Write ``path`` whole (the store's atomic replace), readable by this user only when ``private``."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    replace_atomic(path, data, path.parent)  # its temp file is made 0600
    if not private:
        os.chmod(path, 0o644)
