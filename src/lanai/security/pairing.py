"""Pairing a device with a box by a one-time code: no key or certificate file to copy by hand.

An admin opens a pairing on the box (``lanai pair``), which shows a short code (8 digits, a few minutes,
a few attempts). The device (``lanai pair BOX CODE``, or ``lanai.client.pair``) and the box then run
SPAKE2, a password-authenticated key exchange: both end with the same 32-byte secret if and only if
they used the same code, and someone who watches or relays the exchange learns nothing that lets them
test guesses of the code offline. Each attempt costs the attacker one online guess out of a few.

The exchange is bound to what each side sees of the TLS connection between them: the device hashes the
fingerprint of the certificate it was shown, the box the fingerprint of the certificate it serves, into
the proofs that each side sends. A man in the middle with a certificate of its own cannot make those
agree, even if it knows the code's format and relays every message, so the pairing fails. After the
device's proof checks, the box sends the device its grant (an API key, the box's CA certificate, and
under mTLS a client certificate for the public key the device sent), sealed with AES-GCM under a key
derived from the shared secret; only the device can read it. The device then trusts that CA for this
box (it pins it), so a later certificate renewal on the box does not break it.

Why SPAKE2 and the ``spake2`` package: it is a standard PAKE (RFC 9382), balanced (both sides know the
code, which is all a one-time code needs), and the package is the one magic-wormhole has used for years
to do exactly this: turn a short code read by a person into a strong shared key. Its identities are
fixed (``lanai-device``, ``lanai-box``) so that a message cannot be reflected to its sender.

What the box keeps: the paired device is a key in the key ring (``device = true``), with the
fingerprint of the certificate it was issued; revoking the device (``lanai devices revoke``) revokes
both. The code itself is only ever in this process's memory.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from spake2 import SPAKE2_B, SPAKEError

from lanai.config import Settings
from lanai.errors import BadInput, PermissionDenied
from lanai.security.certs import TlsFiles, fingerprint
from lanai.security.keys import ROLES, KeyRing, Role
from lanai.security.pake import (
    BOX_ID,
    CODE_DIGITS,
    DEVICE_ID,
    NAME_LIMIT,
    Grant,
    device_name,
    prove,
    seal_key,
    transcript,
)  # fmt: skip

__all__ = ["PairingDesk", "PairingOffer", "PairingStatus", "PairedDevice", "Grant", "desk_for"]

DEFAULT_TTL_S = 300.0
DEFAULT_ATTEMPTS = 3
SESSION_TTL_S = 60.0
"""How long a device has between its first message and its proof."""
_PUBLIC_KEY_LIMIT = 4096

IssueCertificate = Callable[[str, Role, bytes], str]
"""Signs a client certificate for (name, role, public key PEM); returns the certificate as PEM."""


def _show(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


# -- the box's side ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairingOffer:
    """An open pairing, as ``lanai pair`` shows it."""

    code: str
    """As people read it: ``1234-5678``."""
    role: Role
    models: tuple[str, ...]
    expires: float
    attempts: int
    """Attempts left."""


@dataclass(frozen=True)
class PairedDevice:
    name: str
    role: Role
    certificate: str | None
    at: float


@dataclass(frozen=True)
class PairingStatus:
    """What an admin may see of the desk: whether a pairing is open (never its code again) and which
    devices it has paired."""

    open: bool
    expires: float | None
    attempts: int
    paired: tuple[PairedDevice, ...]


@dataclass
class _Offer:
    code: str
    role: Role
    models: tuple[str, ...]
    expires: float
    attempts: int


@dataclass
class _Session:
    device: str
    public_key: bytes
    secret: bytes
    expires: float
    offer: _Offer


@dataclass
class _State:
    offer: _Offer | None = None
    sessions: dict[str, _Session] = field(default_factory=dict)
    paired: list[PairedDevice] = field(default_factory=list)


class PairingDesk:
    """The box's side of pairing. Thread-safe; one per server.

    ``fingerprint()`` is the SHA-256 fingerprint of the certificate the box serves now ("" without
    TLS); ``ca_certificate()`` the CA's PEM (None without TLS); ``issue_certificate`` signs a device's
    certificate (None: the box does not issue them, as without mTLS)."""

    def __init__(
        self,
        keys: KeyRing,
        fingerprint: Callable[[], str],
        ca_certificate: Callable[[], str | None],
        issue_certificate: IssueCertificate | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._fingerprint = fingerprint
        self._ca = ca_certificate
        self._issue = issue_certificate
        self._clock = clock
        self._lock = threading.Lock()
        self._state = _State()

    def open(
        self, role: str = "infer", models: Iterable[str] = (), ttl: float = DEFAULT_TTL_S,
        attempts: int = DEFAULT_ATTEMPTS,
    ) -> PairingOffer:  # fmt: skip
        """Open a pairing with a new code (closing any open one); the code is shown only here."""
        if role not in ROLES:
            raise BadInput(f"role {role!r} is not one of {', '.join(ROLES)}.")
        if not 10 <= ttl <= 3600:
            raise BadInput(f"a pairing stays open between 10 s and an hour, not {ttl:g} s.")
        if not 1 <= attempts <= 10:
            raise BadInput(f"a pairing allows 1 to 10 attempts, not {attempts}.")
        code = "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))
        offer = _Offer(code, role, tuple(models), self._clock() + ttl, attempts)  # type: ignore[arg-type]
        with self._lock:
            self._state.offer, self._state.sessions = offer, {}
        return PairingOffer(_show(code), offer.role, offer.models, offer.expires, offer.attempts)

    def close(self) -> None:
        with self._lock:
            self._state.offer, self._state.sessions = None, {}

    def status(self) -> PairingStatus:
        with self._lock:
            offer = self._live_offer()
            return PairingStatus(
                offer is not None,
                offer.expires if offer else None,
                offer.attempts if offer else 0,
                tuple(self._state.paired),
            )

    def start(self, device: str, message: bytes, public_key: bytes = b"") -> tuple[str, bytes]:
        """A device's first message: its name, its SPAKE2 message, and (under mTLS) the public key it
        wants a certificate for. Returns the session id and the box's SPAKE2 message. Every start uses
        one of the code's attempts."""
        device = device_name(device)
        if len(public_key) > _PUBLIC_KEY_LIMIT:
            raise BadInput("the public key is too long.", hint="send one EC P-256 public key as PEM.")
        if self._issue is not None and not public_key:
            raise BadInput(
                "this box requires client certificates (mTLS): send a public key to certify.",
                hint="lanai pair and lanai.client.pair do this; update the client.",
            )
        with self._lock:
            offer = self._live_offer()
            if offer is None:
                raise _closed()
            offer.attempts -= 1
            if offer.attempts <= 0:  # this is the last try: nobody gets another
                self._state.offer = None
            code = offer.code
        box = SPAKE2_B(code.encode(), idA=DEVICE_ID, idB=BOX_ID)
        reply = box.start()
        try:
            secret = box.finish(message)
        except (SPAKEError, ValueError) as exc:
            raise BadInput(f"the pairing message is not a SPAKE2 message from a device: {exc}.") from None
        session = secrets.token_urlsafe(16)
        with self._lock:
            self._prune()
            self._state.sessions[session] = _Session(device, public_key, secret, self._clock() + SESSION_TTL_S, offer)
        return session, reply

    def confirm(self, session: str, device_proof: bytes) -> tuple[bytes, bytes]:
        """The device's proof that it holds the code and sees this box's certificate. On success the
        device is paired: returns the box's proof and the sealed grant. On failure the session ends."""
        with self._lock:
            self._prune()
            state = self._state.sessions.pop(session, None)
        if state is None:
            raise PermissionDenied(
                "there is no such pairing session: it ended, was used, or timed out.",
                hint="start again: lanai pair BOX CODE (with the code the box shows now).",
            )
        served = self._fingerprint()  # read once: the proof and the grant name the same certificate
        bound = transcript(session, state.device, served, state.public_key)
        if not hmac.compare_digest(device_proof, prove(state.secret, b"device", bound)):
            raise PermissionDenied(
                "pairing failed: the code is wrong, or something between this device and the box "
                "presented another certificate.",
                hint="check the code lanai pair shows on the box, and that you reach the box itself, not a proxy.",
            )
        with self._lock:
            if self._state.offer is state.offer:  # the code is spent: one device per code
                self._state.offer, self._state.sessions = None, {}
        grant, certificate = self._grant(state, served)
        with self._lock:
            self._state.paired.append(PairedDevice(grant.name, grant.role, certificate, self._clock()))
        box_proof = prove(state.secret, b"box", bound)
        nonce = secrets.token_bytes(12)
        sealed = nonce + AESGCM(seal_key(state.secret, bound)).encrypt(nonce, grant.to_bytes(), bound)
        return box_proof, sealed

    def _grant(self, state: _Session, served: str) -> tuple[Grant, str | None]:
        """The device's key (and certificate), made now; with the certificate's fingerprint."""
        offer = state.offer
        taken = {k.name for k in self._keys.list()}
        name = state.device
        for n in range(2, 1000):
            if name not in taken:
                break
            name = f"{state.device[: NAME_LIMIT - 4]}-{n}"
        certificate = certified = None
        if self._issue is not None:
            certificate = self._issue(name, offer.role, state.public_key)
            certified = _pem_fingerprint(certificate)
        key = self._keys.create(name, offer.role, models=offer.models, device=True, certificate=certified)
        return Grant(name, offer.role, offer.models, key, served, self._ca(), certificate), certified

    def _live_offer(self) -> _Offer | None:
        offer = self._state.offer
        if offer is not None and (self._clock() >= offer.expires or offer.attempts < 0):
            self._state.offer = offer = None
        return offer

    def _prune(self) -> None:
        now = self._clock()
        for key in [k for k, s in self._state.sessions.items() if now >= s.expires]:
            del self._state.sessions[key]


def _closed() -> PermissionDenied:
    return PermissionDenied(
        "no pairing is open on this box: none was opened, it timed out, its code was used, or its attempts ran out.",
        hint="run lanai pair on the box (as its admin) and use the code it shows.",
    )


def _pem_fingerprint(pem: str | bytes) -> str:
    return fingerprint(x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem))


def desk_for(settings: Settings, keys: KeyRing) -> PairingDesk:
    """The desk of a server with ``settings``: bound to the certificate it serves, handing out the
    store's CA when that is what signed it, and certificates for devices when it requires them (mTLS)
    and holds the CA's key."""
    files = TlsFiles.of(settings.home)
    certfile = settings.tls_certfile

    def served() -> str:
        if certfile is None:
            return ""
        return _pem_fingerprint(certfile.read_bytes())

    def authority() -> str | None:
        own = certfile is not None and certfile.resolve() == files.server_cert.resolve()
        return files.ca_cert.read_text() if own and files.ca_cert.is_file() else None

    issue: IssueCertificate | None = None
    if settings.tls_client_ca is not None and files.ca_key.is_file():
        from lanai.security.certs import certify_client_key

        def issue(name: str, role: Role, public_key: bytes) -> str:
            return certify_client_key(files, name, role, public_key)

    return PairingDesk(keys, served, authority, issue)
