"""The exchange both sides of pairing compute (see ``lanai.security.pairing`` for the protocol and why
SPAKE2): the transcript the proofs are bound to, the proofs, the sealed grant, and the device's half.
Nothing here touches the store, so the client library uses it without importing the server."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import asdict, dataclass
from typing import Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from spake2 import SPAKE2_A, SPAKEError

from lanai.errors import BadInput, ConfigError, PermissionDenied

__all__ = ["CODE_DIGITS", "DEVICE_ID", "BOX_ID", "Grant", "DeviceSide", "normalise_code", "device_name",
           "transcript", "prove", "seal_key"]  # fmt: skip

CODE_DIGITS = 8
DEVICE_ID, BOX_ID = b"lanai-device", b"lanai-box"
"""SPAKE2's fixed identities: a message cannot be reflected to the side that sent it."""
NAME_LIMIT = 64
Role = Literal["infer", "admin"]


def normalise_code(text: str) -> str:
    """The code's digits (people type it with spaces or dashes); BadInput unless there are 8."""
    digits = re.sub(r"[\s-]", "", text)
    if not re.fullmatch(rf"\d{{{CODE_DIGITS}}}", digits):
        raise BadInput(
            f"a pairing code is {CODE_DIGITS} digits, like 1234-5678.", hint="lanai pair on the box shows it."
        )
    return digits


def device_name(text: str) -> str:
    """``text`` as a key name (a-z, 0-9, '.', '_', '-'); BadInput when nothing is left of it."""
    name = re.sub(r"[^a-z0-9._-]+", "-", text.strip().lower()).strip("-._")[:NAME_LIMIT]
    if not name:
        raise BadInput("a device needs a name, like front-desk-pc.", hint="pass --name, or set the hostname.")
    return name


def transcript(session: str, device: str, fingerprint: str, public_key: bytes) -> bytes:
    """What the proofs and the seal are bound to: the session, the device's name, the TLS certificate
    fingerprint (as the side computing it sees it; empty over plain HTTP), the device's public key."""
    parts = [session.encode(), device.encode(), fingerprint.upper().encode(), hashlib.sha256(public_key).digest()]
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def prove(secret: bytes, side: bytes, bound: bytes) -> bytes:
    return hmac.new(secret, b"lanai pair proof " + side + bound, hashlib.sha256).digest()


def seal_key(secret: bytes, bound: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=None, info=b"lanai pair grant" + bound).derive(secret)


@dataclass(frozen=True)
class Grant:
    """What a paired device receives, sealed: its key and how to trust the box from now on."""

    name: str
    role: Role
    models: tuple[str, ...]
    key: str
    server_fingerprint: str
    ca_certificate: str | None
    """The box's CA (PEM), which the device pins; None when the box serves plain HTTP."""
    client_certificate: str | None = None
    """Under mTLS: the device's certificate (PEM) for the public key it sent."""

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Grant:
        fields = json.loads(data)
        fields["models"] = tuple(fields.get("models", ()))
        return cls(**fields)


class DeviceSide:
    """The device's half of the exchange, transport-free: ``lanai.client.pairing`` carries its messages."""

    def __init__(self, code: str, device: str, public_key: bytes = b"") -> None:
        self.device = device_name(device)
        self.public_key = public_key
        self._spake = SPAKE2_A(normalise_code(code).encode(), idA=DEVICE_ID, idB=BOX_ID)
        self.message = self._spake.start()
        self._secret: bytes | None = None
        self._bound = b""

    def proof(self, session: str, box_message: bytes, fingerprint: str) -> bytes:
        """Our proof, for the box's message, bound to the certificate ``fingerprint`` we were shown."""
        try:
            self._secret = self._spake.finish(box_message)
        except (SPAKEError, ValueError) as exc:
            raise ConfigError(f"the box's pairing message is not valid: {exc}.") from None
        self._bound = transcript(session, self.device, fingerprint, self.public_key)
        return prove(self._secret, b"device", self._bound)

    def grant(self, box_proof: bytes, sealed: bytes) -> Grant:
        """The grant, once the box has proved it holds the code and serves the certificate we saw."""
        if self._secret is None:
            raise RuntimeError("call proof() first")
        if not hmac.compare_digest(box_proof, prove(self._secret, b"box", self._bound)):
            raise PermissionDenied(
                "the box's proof does not check: something between this device and the box is answering for it.",
                hint="connect to the box directly (not through a proxy) and pair again.",
            )
        try:
            plain = AESGCM(seal_key(self._secret, self._bound)).decrypt(sealed[:12], sealed[12:], self._bound)
        except Exception:
            raise PermissionDenied("the sealed grant does not open: it was changed on the way.") from None
        return Grant.from_bytes(plain)
