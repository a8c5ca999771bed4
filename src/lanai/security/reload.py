"""Keeping the served certificate current without a restart.

:class:`CertWatcher` looks at the certificate and key files every second. When they change (``lanai certs
renew``, or any tool that replaces them), it reads both, checks that they make a usable pair (both parse,
the key belongs to the certificate, the certificate has not expired) and hands the pair to every door that
subscribed; on any failure it logs why and the doors keep serving the pair they have. Files written one
after the other are therefore never used half-renewed: the new certificate beside the old key is refused
until the new key lands too.

When the served files are the store's own (``<store>/tls/server.*``) and the store holds its CA's key,
the watcher also renews the certificate itself once it is within ``RENEW_WITHIN`` of expiring (checked at
start and daily). It knows nothing of HTTP or gRPC: a door subscribes a callable that takes a
:class:`CertPair` (see :func:`load_pair_into` for an ``ssl.SSLContext``).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import ssl
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from lanai.config import Settings
from lanai.errors import ConfigError
from lanai.security.certs import RENEW_WITHIN, TlsFiles, fingerprint, renew_if_due

__all__ = ["CertPair", "CertWatcher", "read_pair", "load_pair_into"]

log = logging.getLogger(__name__)

_POLL_S = 1.0
_RENEWAL_CHECK_S = 24 * 3600.0
_Signature = tuple[tuple[int, int, int], ...]


@dataclass(frozen=True)
class CertPair:
    """A certificate (chain) and its private key, as PEM, known to belong together."""

    cert_pem: bytes
    key_pem: bytes
    fingerprint: str
    """SHA-256 of the leaf certificate."""
    not_after: datetime.datetime


def read_pair(certfile: Path, keyfile: Path) -> CertPair:
    """Read and check a certificate and key; raises ``ConfigError`` saying what is wrong with them."""
    try:
        cert_pem, key_pem = certfile.read_bytes(), keyfile.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {exc.filename}: {exc.strerror}.") from None
    try:
        leaf = x509.load_pem_x509_certificates(cert_pem)[0]
    except ValueError:
        raise ConfigError(f"{certfile} holds no PEM certificate.", hint=_HINT) from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{keyfile} holds no unencrypted PEM private key.", hint=_HINT) from None
    if _public(key.public_key()) != _public(leaf.public_key()):
        raise ConfigError(f"the key in {keyfile} does not belong to the certificate in {certfile}.", hint=_HINT)
    if leaf.not_valid_after_utc <= datetime.datetime.now(datetime.timezone.utc):
        raise ConfigError(f"the certificate in {certfile} expired on {leaf.not_valid_after_utc:%Y-%m-%d}.", hint=_HINT)
    return CertPair(cert_pem, key_pem, fingerprint(leaf), leaf.not_valid_after_utc)


_HINT = "write the certificate and its key together (lanai certs renew does), or restore the old pair."


def _public(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_pair_into(context: ssl.SSLContext, pair: CertPair) -> None:
    """Make ``context`` serve ``pair`` from its next handshake on (connections already open keep theirs).
    ``ssl`` loads only from files, so the pair goes through a private temporary directory."""
    with tempfile.TemporaryDirectory(prefix="lanai-tls-") as folder:  # made 0700
        cert, key = Path(folder, "cert.pem"), Path(folder, "key.pem")
        for path, data in ((cert, pair.cert_pem), (key, pair.key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
        context.load_cert_chain(cert, key)


class CertWatcher:
    """Watches ``certfile`` and ``keyfile``; each new usable pair goes to the subscribers. With
    ``authority`` (the store's CA files), it also renews the certificate before it expires."""

    def __init__(self, certfile: Path, keyfile: Path, *, authority: TlsFiles | None = None) -> None:
        self.certfile, self.keyfile = certfile, keyfile
        self.authority = authority
        self.current: CertPair | None = None
        """The pair the doors serve (as far as the watcher knows)."""
        self._listeners: list[Callable[[CertPair], None]] = []
        self._seen: _Signature | None = None

    @classmethod
    def for_settings(cls, settings: Settings) -> CertWatcher | None:
        """A watcher for the served certificate (None without TLS); it renews only the store's own."""
        if settings.tls_certfile is None or settings.tls_keyfile is None:
            return None
        files = TlsFiles.of(settings.home)
        own = Path(settings.tls_certfile).resolve() == files.server_cert.resolve()
        return cls(Path(settings.tls_certfile), Path(settings.tls_keyfile), authority=files if own else None)

    def subscribe(self, listener: Callable[[CertPair], None]) -> None:
        """Call ``listener(pair)`` (on the watcher's event loop) whenever a new pair is to be served."""
        self._listeners.append(listener)

    def prepare(self) -> None:
        """Before the doors start (blocking): renew if due, then note the pair they are about to load."""
        self._renew_if_due()
        self._seen = self._signature()
        try:
            self.current = read_pair(self.certfile, self.keyfile)
        except ConfigError as exc:  # the doors will say so as they load it
            log.debug("the certificate to serve is not usable yet: %s", exc)

    async def run(self) -> None:
        """Poll until cancelled: reload on change, renew when due (checked daily)."""
        next_renewal_check = time.monotonic() + _RENEWAL_CHECK_S
        while True:
            await asyncio.sleep(_POLL_S)
            try:
                if time.monotonic() >= next_renewal_check:
                    next_renewal_check = time.monotonic() + _RENEWAL_CHECK_S
                    await asyncio.to_thread(self._renew_if_due)
                pair = await asyncio.to_thread(self.poll)
            except Exception:  # the watching must outlive any surprise; the doors keep what they serve
                log.exception("checking the certificate files failed; trying again in a moment")
                continue
            if pair is not None:
                self._switch(pair)

    def poll(self) -> CertPair | None:
        """The files' new pair, if they changed and make a usable one (blocking; logs a refusal once)."""
        seen = self._signature()
        if seen == self._seen:
            return None
        self._seen = seen
        try:
            pair = read_pair(self.certfile, self.keyfile)
        except ConfigError as exc:
            serving = self.current.fingerprint if self.current else "the pair loaded at start"
            log.warning("the certificate files changed but cannot be used: %s Still serving %s. Hint: %s",
                        exc.message, serving, exc.hint)  # fmt: skip
            return None
        if self._signature() != seen:  # replaced while being read: look again at the next poll
            self._seen = None
            return None
        if self.current is not None and pair.fingerprint == self.current.fingerprint:
            return None
        return pair

    def _switch(self, pair: CertPair) -> None:
        for listener in self._listeners:
            try:
                listener(pair)
            except Exception as exc:  # one door failing must not stop the other from switching
                log.error("a door could not switch to the new certificate %s: %s", pair.fingerprint, exc)
        self.current = pair
        log.info("now serving the certificate %s (valid until %s) to new connections",
                 pair.fingerprint, f"{pair.not_after:%Y-%m-%d}")  # fmt: skip

    def _renew_if_due(self) -> None:
        if self.authority is None:
            return
        try:
            renewed = renew_if_due(self.authority)
        except (ConfigError, OSError, ValueError) as exc:
            log.warning("could not renew the server certificate: %s (will try again tomorrow)", exc)
            return
        if renewed is not None:
            log.info("the server certificate was due to expire within %d days: renewed it from the store's "
                     "CA (new fingerprint %s)", RENEW_WITHIN.days, renewed)  # fmt: skip

    def _signature(self) -> _Signature:
        """What changes whenever either file is replaced or rewritten."""
        stamps = []
        for path in (self.certfile, self.keyfile):
            try:
                st = path.stat()
            except OSError:
                stamps.append((0, 0, 0))
                continue
            stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(stamps)
