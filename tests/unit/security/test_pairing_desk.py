"""The pairing exchange between a device and the box's desk, without a transport: what each side checks.
The same over real sockets and TLS is in tests/integration/test_pairing.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from lanai.errors import BadInput, PermissionDenied
from lanai.security.keys import KeyRing
from lanai.security.pake import DeviceSide
from lanai.security.pairing import PairingDesk

BOX_FP = "AB:" * 31 + "CD"
OTHER_FP = "EF:" * 31 + "01"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ring(tmp_path: Path) -> KeyRing:
    return KeyRing(tmp_path)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def desk(ring: KeyRing, clock: Clock) -> PairingDesk:
    return PairingDesk(ring, lambda: BOX_FP, lambda: "CA PEM", clock=clock)


def run(desk: PairingDesk, code: str, device: str = "Front Desk PC", seen: str = BOX_FP) -> object:
    side = DeviceSide(code, device)
    session, reply = desk.start(side.device, side.message)
    box_proof, sealed = desk.confirm(session, side.proof(session, reply, seen))
    return side.grant(box_proof, sealed)


def test_the_right_code_pairs_and_the_grant_holds_a_working_key(desk: PairingDesk, ring: KeyRing) -> None:
    offer = desk.open("infer", ["tiny"])
    grant = run(desk, offer.code)
    assert grant.name == "front-desk-pc" and grant.role == "infer" and grant.models == ("tiny",)  # type: ignore[attr-defined]
    assert grant.server_fingerprint == BOX_FP and grant.ca_certificate == "CA PEM"  # type: ignore[attr-defined]
    record = ring.verify(grant.key)  # type: ignore[attr-defined]
    assert record is not None and record.device and record.models == ("tiny",)
    status = desk.status()
    assert not status.open and [d.name for d in status.paired] == ["front-desk-pc"]


def test_a_code_pairs_one_device_only(desk: PairingDesk) -> None:
    offer = desk.open()
    run(desk, offer.code)
    with pytest.raises(PermissionDenied, match="no pairing is open"):
        run(desk, offer.code, "second")


def test_a_wrong_code_fails_and_the_attempts_run_out(desk: PairingDesk, ring: KeyRing) -> None:
    offer = desk.open(attempts=2)
    wrong = "00000000" if offer.code != "0000-0000" else "11111111"
    with pytest.raises(PermissionDenied, match="code is wrong"):
        run(desk, wrong)
    with pytest.raises(PermissionDenied, match="code is wrong"):
        run(desk, wrong)
    with pytest.raises(PermissionDenied, match="no pairing is open"):  # the right code is burnt too
        run(desk, offer.code)
    assert ring.list() == []


def test_a_certificate_other_than_the_box_s_fails_the_pairing(desk: PairingDesk, ring: KeyRing) -> None:
    """A man in the middle relays every message but shows its own certificate: the proofs disagree."""
    offer = desk.open()
    with pytest.raises(PermissionDenied, match="another certificate"):
        run(desk, offer.code, seen=OTHER_FP)
    assert ring.list() == []


def test_a_replayed_proof_or_first_message_gets_nothing(desk: PairingDesk) -> None:
    offer = desk.open(attempts=3)
    side = DeviceSide(offer.code, "laptop")
    session, reply = desk.start(side.device, side.message)
    device_proof = side.proof(session, reply, BOX_FP)
    desk.confirm(session, device_proof)
    with pytest.raises(PermissionDenied, match="no such pairing session"):
        desk.confirm(session, device_proof)
    offer = desk.open()
    session2, _ = desk.start(side.device, side.message)  # a recorded first message, sent again
    with pytest.raises(PermissionDenied, match="code is wrong"):  # its proof was for another exchange
        desk.confirm(session2, device_proof)


def test_a_code_expires(desk: PairingDesk, clock: Clock) -> None:
    offer = desk.open(ttl=60)
    clock.now += 61
    with pytest.raises(PermissionDenied, match="no pairing is open"):
        run(desk, offer.code)


def test_the_device_refuses_a_box_that_cannot_prove_the_code(desk: PairingDesk) -> None:
    offer = desk.open()
    side = DeviceSide(offer.code, "laptop")
    session, reply = desk.start(side.device, side.message)
    box_proof, sealed = desk.confirm(session, side.proof(session, reply, BOX_FP))
    with pytest.raises(PermissionDenied, match="proof does not check"):
        side.grant(bytes(32), sealed)
    with pytest.raises(PermissionDenied, match="does not open"):
        side.grant(box_proof, sealed[:-1] + bytes([sealed[-1] ^ 1]))


def test_bad_messages_are_bad_input(desk: PairingDesk) -> None:
    desk.open()
    with pytest.raises(BadInput, match="SPAKE2"):
        desk.start("laptop", b"not a spake2 message")
    with pytest.raises(BadInput, match="8 digits"):
        DeviceSide("1234", "laptop")
    with pytest.raises(BadInput, match="name"):
        desk.start("---", DeviceSide("1234-5678", "x").message)


def test_a_second_device_with_the_same_name_gets_its_own_key(desk: PairingDesk, ring: KeyRing) -> None:
    run(desk, desk.open().code, "laptop")
    second = run(desk, desk.open().code, "laptop")
    assert second.name == "laptop-2"  # type: ignore[attr-defined]
    assert sorted(k.name for k in ring.list()) == ["laptop", "laptop-2"]


def test_revoking_a_device_revokes_its_certificate(ring: KeyRing, clock: Clock) -> None:
    desk = PairingDesk(ring, lambda: BOX_FP, lambda: "CA", issue_certificate=_fake_issuer, clock=clock)
    offer = desk.open()
    side = DeviceSide(offer.code, "tablet", public_key=b"PUBLIC KEY PEM")
    session, reply = desk.start(side.device, side.message, side.public_key)
    grant = side.grant(*desk.confirm(session, side.proof(session, reply, BOX_FP)))
    record = ring.verify(grant.key)
    assert record is not None and record.certificate is not None
    assert not ring.certificate_revoked(record.certificate)
    ring.revoke("tablet")
    assert ring.verify(grant.key) is None
    assert ring.certificate_revoked(record.certificate)


def _fake_issuer(name: str, role: str, public_key: bytes) -> str:
    """A real certificate (self-signed, for the fingerprint): the desk only needs PEM back."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    assert public_key == b"PUBLIC KEY PEM"
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM).decode()
