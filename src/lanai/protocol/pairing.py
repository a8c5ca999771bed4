"""Pairing's messages as wire values (see ``lanai.security.pairing`` for the exchange).

A device calls ``POST /v1/pair`` with ``PairStart`` and gets ``PairStarted``, then ``POST
/v1/pair/confirm`` with ``PairConfirm`` and gets ``PairConfirmed``. An admin opens a pairing with
``POST /v1/admin/pairing`` (``PairingRequest`` → ``PairingOfferInfo``) and reads or closes it at the
same path. Binary values travel as standard base64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lanai.protocol.wire import Wire, doc

__all__ = [
    "PairStart",
    "PairStarted",
    "PairConfirm",
    "PairConfirmed",
    "PairingRequest",
    "PairingOfferInfo",
    "PairedDeviceInfo",
    "PairingStatusInfo",
]


@dataclass(frozen=True)
class PairStart(Wire):
    """A device's first pairing message."""

    device: str = doc("The device's name (becomes its key's name), e.g. front-desk-pc.", maxLength=64)
    message: str = doc("The device's SPAKE2 message (side A), base64.", maxLength=256)
    public_key: str | None = doc(
        "Under mTLS: the PEM public key (EC P-256) the box should certify for this device.",
        default=None,
        omit_none=True,
        maxLength=4096,
    )


@dataclass(frozen=True)
class PairStarted(Wire):
    session: str = doc("This pairing attempt; send it with the proof.")
    message: str = doc("The box's SPAKE2 message (side B), base64.")


@dataclass(frozen=True)
class PairConfirm(Wire):
    session: str = doc("The session PairStarted named.", maxLength=64)
    proof: str = doc("HMAC proving the device holds the code and saw the box's certificate, base64.", maxLength=64)


@dataclass(frozen=True)
class PairConfirmed(Wire):
    proof: str = doc("The box's proof, base64: the device checks it before trusting the grant.")
    grant: str = doc("The device's grant (key, CA, certificate), sealed with AES-GCM, base64.")


@dataclass(frozen=True)
class PairingRequest(Wire):
    """An admin opening a pairing."""

    role: Literal["infer", "admin"] = doc("The role the paired device's key gets.", default="infer")
    models: list[str] = doc("Models the device may use; empty: all.", default=[])
    ttl: float = doc("Seconds the code stays valid.", default=300.0, minimum=10, maximum=3600)
    attempts: int = doc("Tries the code allows.", default=3, minimum=1, maximum=10)


@dataclass(frozen=True)
class PairingOfferInfo(Wire):
    code: str = doc("The one-time code to type on the device, e.g. 1234-5678. Shown only in this answer.")
    role: Literal["infer", "admin"] = doc("The role the paired device gets.")
    models: list[str] = doc("Models it may use; empty: all.")
    expires: float = doc("When the code stops working (Unix time).")
    attempts: int = doc("Tries the code allows.")


@dataclass(frozen=True)
class PairedDeviceInfo(Wire):
    name: str = doc("The device's key name.")
    role: Literal["infer", "admin"] = doc("Its role.")
    certificate: str | None = doc("The fingerprint of the certificate it was issued (mTLS).")
    at: float = doc("When it paired (Unix time).")


@dataclass(frozen=True)
class PairingStatusInfo(Wire):
    open: bool = doc("Whether a code is waiting for a device.")
    expires: float | None = doc("When the open code stops working.")
    attempts: int = doc("Tries it has left.")
    paired: list[PairedDeviceInfo] = doc("Devices paired since the server started.")
