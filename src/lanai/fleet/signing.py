"""Signing a model version's files, and checking them against trusted keys: OpenSSF model signing
(sigstore's ``model-signing`` library) in key mode, offline.

Chosen over cosign-style signatures of the registry manifest: the signature covers every file of the
model (each file's SHA-256, and their names) rather than one registry's manifest, so it means the same
in any registry, on a USB stick or after ``lanai pull``; it is the format ML teams are adopting for
models (``model_signing sign key`` in their pipelines makes the same signature lanai checks), it works
with a plain ECDSA key pair and no network, and lanai's artifact carries it as one more layer, so a
registry needs nothing beyond the plain OCI distribution API. The library is in the ``fleet`` extra.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

from lanai.errors import ConfigError, SignatureError

__all__ = ["sign_folder", "verify_folder", "key_fingerprint"]

log = logging.getLogger(__name__)


def _library():  # type: ignore[no-untyped-def]
    try:
        import model_signing
    except ImportError as exc:
        raise ConfigError(f"signing models needs the fleet extra ({exc}).", hint="pip install 'lanai[fleet]'") from None
    return model_signing


def key_fingerprint(public_key: Path) -> str:
    """A short name for a public key: the SHA-256 of its DER form, first 16 hex digits."""
    from cryptography.hazmat.primitives import serialization

    key = _public_key(public_key)
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:16]


def sign_folder(folder: Path, private_key: Path, signature: Path, password: str | None = None) -> None:
    """Sign every file under ``folder`` with ``private_key`` (PEM, elliptic curve); the signature (a
    sigstore bundle) is written to ``signature``, which must be outside ``folder``."""
    library = _library()
    if not private_key.is_file():
        raise ConfigError(f"the signing key {private_key} does not exist.", hint="give the path of a PEM private key.")
    try:
        config = library.signing.Config().use_elliptic_key_signer(private_key=private_key, password=password)
        config.sign(folder, signature)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"cannot sign with {private_key}: {exc}",
            hint="the key must be an elliptic-curve private key in PEM (openssl ecparam -genkey -name prime256v1).",
        ) from None


def verify_folder(folder: Path, signature: Path, trusted: Sequence[Path]) -> Path:
    """Check that ``signature`` signs exactly the files under ``folder`` with one of the ``trusted``
    public keys; returns that key. SignatureError says what failed."""
    library = _library()
    if not signature.is_file():
        raise SignatureError(
            "the artifact is not signed, and this box accepts only signed models.",
            hint="sign it when publishing (lanai push --sign-key KEY); a box without trusted_signing_keys takes "
            "unsigned models.",
        )
    reasons = []
    for key in trusted:
        _public_key(key)  # a missing or unreadable key is the box's mistake: say so plainly
        try:
            library.verifying.Config().use_elliptic_key_verifier(public_key=key).verify(folder, signature)
        except Exception as exc:  # the library raises ValueError and others for a bad or foreign signature
            reasons.append(f"{key.name}: {_first_line(exc)}")
            continue
        return key
    raise SignatureError(
        "the artifact's signature does not verify against any trusted key (" + "; ".join(reasons) + ").",
        hint="it was signed with another key, or its files were changed after signing; nothing was imported.",
    )


def _public_key(path: Path):  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives import serialization

    try:
        return serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read the trusted key {path}: {exc.strerror or exc}.") from None
    except ValueError:
        raise ConfigError(
            f"{path} is not a PEM public key.", hint="give the .pub file that goes with the signing key."
        ) from None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
