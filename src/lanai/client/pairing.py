"""The device's side of pairing: ``pair(box, code)`` runs the exchange (``lanai.security.pairing``) over
HTTP and saves what the box grants as a profile; ``paired(name)`` loads it and makes a client.

    from lanai.client import pair, paired

    pair("https://box.local:8000", "1234-5678")          # once, with the code `lanai pair` shows
    with paired("box.local").client() as lanai:         # ever after
        print(lanai.classify("efficientnet-lite0", "cat.jpg").label)

The certificate the box shows during pairing is not checked against any CA (the device trusts none of
the box's yet): instead its fingerprint goes into the exchange's proofs, which match only if the box at
the other end holds the code and serves that very certificate. Afterwards the device trusts the box's
own CA, for that box only (the profile's ``ca.pem``), and ignores the host name, so a box whose address
changes stays reachable; the key and the device's private key are kept readable by this user only.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import tomli_w
import tomllib
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from lanai.client.errors import ConnectionFailed, error_from_answer
from lanai.errors import ConfigError
from lanai.security.pake import DeviceSide, Grant

__all__ = ["pair", "paired", "paired_servers", "PairedServer", "profiles_home"]


def profiles_home() -> Path:
    """Where paired boxes are kept: ``$LANAI_CLIENT_HOME`` or the user's config folder, ``paired/``."""
    base = os.environ.get("LANAI_CLIENT_HOME")
    if base is None:
        from platformdirs import user_config_dir

        base = user_config_dir("lanai")
    return Path(base) / "paired"


@dataclass(frozen=True)
class PairedServer:
    """A box this device has paired with: where it is, the key it granted, how to trust it."""

    name: str
    url: str
    key: str
    role: str
    device: str
    fingerprint: str
    """The box's certificate when it paired (SHA-256); "" for a box serving plain HTTP."""
    folder: Path

    @property
    def ca_file(self) -> Path | None:
        path = self.folder / "ca.pem"
        return path if path.exists() else None

    @property
    def cert_files(self) -> tuple[str, str] | None:
        cert, key = self.folder / "client.pem", self.folder / "client.key"
        return (str(cert), str(key)) if cert.exists() else None

    def ssl_context(self) -> ssl.SSLContext | bool:
        """Trust the box's own CA (and nothing else) for it, with the client certificate under mTLS."""
        if self.ca_file is None:
            return True
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.check_hostname = False  # pinned to this box's CA: its address may change, its CA does not
        if self.cert_files is not None:
            context.load_cert_chain(*self.cert_files)
        return context

    def client(self, **options: Any) -> Any:
        """A ``lanai.client.Client`` for this box with its key and trust (``options`` go to the Client)."""
        from lanai.client.sync import Client

        return Client(self.url, api_key=self.key, verify=self.ssl_context(), **options)

    def async_client(self, **options: Any) -> Any:
        from lanai.client.aio import AsyncClient

        return AsyncClient(self.url, api_key=self.key, verify=self.ssl_context(), **options)


def pair(
    box: str, code: str, device: str | None = None, *, name: str | None = None, home: Path | None = None,
    timeout: float = 30.0,
) -> PairedServer:  # fmt: skip
    """Pair with ``box`` (a URL, or a host[:port]: HTTPS is tried first, then HTTP) using the one-time
    ``code``; save and return the profile, named ``name`` (default: the box's host name). ``device`` is
    this device's name on the box (default: the host name)."""
    device = device or socket.gethostname().split(".")[0] or "device"
    key = ec.generate_private_key(ec.SECP256R1())
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    side = DeviceSide(code, device, public_pem)
    url, grant, seen = _exchange(_candidates(box), side, timeout)
    if grant.server_fingerprint.upper() != seen.upper():
        raise ConfigError("the box names another certificate than the one it showed: pairing refused.")
    return _save(name or urlsplit(url).hostname or "box", url, grant, seen, key, side.device, home)


def _candidates(box: str) -> list[str]:
    if "://" in box:
        return [box.rstrip("/")]
    host = box if ":" in box.strip("[]").rsplit("]", 1)[-1] else f"{box}:8000"
    return [f"https://{host}", f"http://{host}"]


def _exchange(urls: list[str], side: DeviceSide, timeout: float) -> tuple[str, Grant, str]:
    """Run the exchange against the first URL that answers; returns it, the grant and the fingerprint."""
    failure: Exception | None = None
    for url in urls:
        try:
            with httpx.Client(verify=_unverified(), timeout=timeout) as http:
                start = {"device": side.device, "message": _b64(side.message)}
                if side.public_key:
                    start["public_key"] = side.public_key.decode()
                answer = _post(http, url + "/v1/pair", start)
                seen = _fingerprint(answer[1])
                proof = side.proof(answer[0]["session"], _unb64(answer[0]["message"]), seen)
                confirmed, response = _post(http, url + "/v1/pair/confirm", {"session": answer[0]["session"],
                                                                             "proof": _b64(proof)})  # fmt: skip
                if _fingerprint(response) != seen:
                    raise ConfigError("the box's certificate changed during pairing: pairing refused.")
                return url, side.grant(_unb64(confirmed["proof"]), _unb64(confirmed["grant"])), seen
        except (httpx.TransportError, ssl.SSLError) as exc:
            failure = exc  # not there, or not this scheme: try the next
    raise ConnectionFailed(f"cannot reach {' or '.join(urls)}: {failure}.")


def _post(http: httpx.Client, url: str, body: dict[str, Any]) -> tuple[dict[str, Any], httpx.Response]:
    response = http.post(url, json=body)
    if response.status_code != 200:
        raise error_from_answer(response.status_code, response.headers, response.content)
    data = response.json()
    if not isinstance(data, dict):
        raise ConfigError(f"{url} did not answer a JSON object: is it a lanai server?")
    return data, response


def _unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the exchange checks the certificate
    return context


def _fingerprint(response: httpx.Response) -> str:
    """The SHA-256 fingerprint of the certificate the response came over; "" over plain HTTP."""
    stream = response.extensions.get("network_stream")
    tls = stream.get_extra_info("ssl_object") if stream is not None else None
    der = tls.getpeercert(True) if tls is not None else None  # positional: httpcore may hand the C object
    return hashlib.sha256(der).digest().hex(":").upper() if der else ""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _save(
    name: str, url: str, grant: Grant, seen: str, key: ec.EllipticCurvePrivateKey, device: str, home: Path | None
) -> PairedServer:
    folder = (home or profiles_home()) / _safe(name)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    record = {"url": url, "key": grant.key, "role": grant.role, "device": grant.name, "fingerprint": seen}
    _write(folder / "server.toml", tomli_w.dumps(record).encode())
    for file, text in (("ca.pem", grant.ca_certificate), ("client.pem", grant.client_certificate)):
        if text:
            _write(folder / file, text.encode())
        else:
            (folder / file).unlink(missing_ok=True)
    if grant.client_certificate:
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write(folder / "client.key", pem)
    return PairedServer(name, url, grant.key, grant.role, grant.name, seen, folder)


def _write(path: Path, data: bytes) -> None:
    """Written whole, readable by this user only (it holds a key)."""
    temp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, path)


def _safe(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in name).strip(".-")
    if not cleaned:
        raise ConfigError(f"{name!r} cannot name a paired box.", hint="use letters, digits, '.', '_' or '-'.")
    return cleaned


def paired(name: str, *, home: Path | None = None) -> PairedServer:
    """The box paired under ``name``; ConfigError (listing the known ones) if there is none."""
    folder = (home or profiles_home()) / _safe(name)
    try:
        record = tomllib.loads((folder / "server.toml").read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = ", ".join(p.name for p in paired_servers(home=home)) or "none yet"
        raise ConfigError(
            f"no box is paired as {name!r}.", hint=f"paired boxes: {known}; lanai pair BOX CODE adds one."
        ) from None
    return PairedServer(
        name, record["url"], record["key"], record["role"], record["device"], record["fingerprint"], folder
    )


def paired_servers(*, home: Path | None = None) -> list[PairedServer]:
    root = home or profiles_home()
    if not root.is_dir():
        return []
    return [paired(p.name, home=root) for p in sorted(root.iterdir()) if (p / "server.toml").is_file()]
