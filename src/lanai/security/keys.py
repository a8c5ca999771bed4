"""API keys with roles, kept in the store, never in clear.

A key reads ``lanai_<id>_<secret>``: the id finds its record, and the record holds only an HMAC-SHA256 of
the whole key under a server secret (``keys/secret``, 32 random bytes, readable by the server's user
only). HMAC rather than a slow password hash because the secret half is 256 random bits (nothing to
guess) and the check runs on every request: a few microseconds, compared in constant time.

Records live in ``keys/keys.toml``, written whole and atomically under a lock, so ``lanai keys`` and a
running server can share them: the server re-reads the file when it changes, so a revocation takes
effect without a restart. When each key was last used is kept apart (``keys/used.json``), written by
the server now and then, so that serving never rewrites the records.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import tomli_w

from lanai.errors import ConfigError, Conflict, NotFound, StoreError
from lanai.store._fs import replace_atomic
from lanai.store._locks import FileLock

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["ApiKey", "KeyRing", "ROLES", "ensure_admin_key", "parse_duration", "parse_rate"]

Role = Literal["infer", "admin"]
ROLES: tuple[Role, ...] = ("infer", "admin")
_PREFIX = "lanai"
_KEY = re.compile(r"^lanai_([a-z0-9]{10})_([A-Za-z0-9_-]{43})$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_RELOAD_EVERY_S = 0.5


@dataclass(frozen=True)
class ApiKey:
    """A key's record: who it is and what it may do, with the digest of the key, never the key."""

    name: str
    id: str
    digest: str
    role: Role
    models: tuple[str, ...] = ()
    """Models it may use; empty: all."""
    created: float = 0.0
    expires: float | None = None
    rate: float | None = None
    """Requests per second it may make, on average; None: no limit."""
    concurrency: int | None = None
    """Requests it may have running at once; None: no limit."""
    last_used: float | None = None
    device: bool = False
    """Made by pairing a device (``lanai pair``) rather than by ``lanai keys create``."""
    certificate: str | None = None
    """The fingerprint of the client certificate issued with it (pairing under mTLS): revoked with it."""

    def expired(self, now: float) -> bool:
        return self.expires is not None and now >= self.expires

    def allows_model(self, model: str) -> bool:
        return not self.models or model in self.models

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"id": self.id, "digest": self.digest, "role": self.role, "created": self.created}
        if self.models:
            record["models"] = list(self.models)
        if self.expires is not None:
            record["expires"] = self.expires
        if self.rate is not None:
            record["rate"] = self.rate
        if self.concurrency is not None:
            record["concurrency"] = self.concurrency
        if self.device:
            record["device"] = True
        if self.certificate is not None:
            record["certificate"] = self.certificate
        return record

    @classmethod
    def from_record(cls, name: str, record: dict[str, Any]) -> ApiKey:
        role = record["role"]
        if role not in ROLES:
            raise StoreError(f"key {name!r} has an unknown role {role!r}.")
        return cls(
            name, str(record["id"]), str(record["digest"]), role, tuple(record.get("models", ())),
            float(record.get("created", 0.0)), _optional(record.get("expires")), _optional(record.get("rate")),
            None if record.get("concurrency") is None else int(record["concurrency"]), None,
            bool(record.get("device", False)), record.get("certificate"),
        )  # fmt: skip


def _optional(value: Any) -> float | None:
    return None if value is None else float(value)


class KeyRing:
    """The keys of the store at ``home``: created, listed and revoked by ``lanai keys``, checked by the
    server on every request."""

    def __init__(self, home: Path) -> None:
        self.root = home / "keys"
        self._file = self.root / "keys.toml"
        self._used_file = self.root / "used.json"
        self._lock = FileLock(self.root / "keys.lock")
        self._mutex = threading.Lock()
        self._by_id: dict[str, ApiKey] = {}
        self._revoked: frozenset[str] = frozenset()
        self._seen: tuple[int, int, int] | None = None
        self._checked = 0.0
        self._used: dict[str, float] = {}
        self._used_dirty = False
        self._secret_bytes: bytes | None = None

    # -- managing ----------------------------------------------------------------------------------

    def create(
        self, name: str, role: Role, *, models: Iterable[str] = (), expires_in: float | None = None,
        rate: float | None = None, concurrency: int | None = None, now: float | None = None,
        device: bool = False, certificate: str | None = None,
    ) -> str:  # fmt: skip
        """Add a key and return its text: the only time anyone sees it."""
        if not _NAME.match(name):
            raise ConfigError(
                f"key name {name!r} is not allowed.", hint="use a-z, 0-9, '.', '_' or '-', e.g. front-desk."
            )
        if role not in ROLES:
            raise ConfigError(f"role {role!r} is not one of {', '.join(ROLES)}.")
        if rate is not None and rate <= 0:
            raise ConfigError(f"rate {rate} is not positive.", hint="e.g. --rate 20/s")
        if concurrency is not None and concurrency < 1:
            raise ConfigError(f"concurrency {concurrency} is not a positive number.", hint="e.g. --concurrency 4")
        now = time.time() if now is None else now
        key_id = base64.b32encode(secrets.token_bytes(10)).decode().lower()[:10]
        key_id = re.sub(r"[^a-z0-9]", "a", key_id)
        text = f"{_PREFIX}_{key_id}_{base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip('=')}"
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        record = ApiKey(name, key_id, self._digest(text), role, tuple(models), now,
                        None if expires_in is None else now + expires_in, rate, concurrency, None, device,
                        certificate)  # fmt: skip
        with self._lock.exclusive():
            keys, revoked = self._read()
            if name in keys:
                raise Conflict(f"a key named {name!r} exists.",
                               hint=f"pick another name, or revoke it first (lanai keys revoke {name}).")  # fmt: skip
            keys[name] = record
            self._write(keys, revoked)
        return text

    def revoke(self, name: str, *, device: bool = False) -> None:
        """Remove the key ``name``; with ``device``, only a paired device's (its certificate goes too)."""
        if not self.root.is_dir():  # no key was ever made here
            raise _not_found(name, {}, device=device)
        with self._lock.exclusive():
            keys, revoked = self._read()
            if name not in keys or (device and not keys[name].device):
                raise _not_found(name, keys, device=device)
            gone = keys.pop(name)
            if gone.certificate is not None:  # a paired device's certificate goes with its key
                revoked[gone.certificate] = {"name": name, "revoked": time.time()}
            self._write(keys, revoked)

    def revoke_certificate(self, fingerprint: str, name: str = "") -> None:
        """Refuse the client certificate with this SHA-256 fingerprint from now on, on every door."""
        fingerprint = fingerprint.strip().upper()
        if not re.fullmatch(r"[0-9A-F]{2}(:[0-9A-F]{2}){31}", fingerprint):
            raise ConfigError(f"{fingerprint!r} is not a SHA-256 fingerprint.", hint="as lanai certs prints: AB:CD:…")
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self._lock.exclusive():
            keys, revoked = self._read()
            revoked[fingerprint] = {"name": name, "revoked": time.time()}
            self._write(keys, revoked)

    def certificate_revoked(self, fingerprint: str) -> bool:
        """Whether the certificate with this fingerprint has been revoked (looked up as keys are)."""
        self._refresh()
        return fingerprint in self._revoked

    def list(self) -> list[ApiKey]:
        """Every key, with when it was last used (as far as the server has written it down)."""
        if not self.root.is_dir():
            return []
        used = self._read_used()
        with self._lock.shared():
            keys, _ = self._read()
        return [replace(k, last_used=used.get(k.name)) for k in keys.values()]

    # -- checking ----------------------------------------------------------------------------------

    def verify(self, text: str, now: float | None = None) -> ApiKey | None:
        """The key ``text`` is, if it is a live key of this store; None for anything else."""
        match = _KEY.match(text)
        if match is None:
            return None
        now = time.time() if now is None else now
        self._refresh()
        record = self._by_id.get(match.group(1))
        if record is None:  # a key made a moment ago: look at the file now (bad keys are limited elsewhere)
            self._refresh(force=True)
            record = self._by_id.get(match.group(1))
        if record is None or not hmac.compare_digest(record.digest, self._digest(text)) or record.expired(now):
            return None
        self._used[record.name] = now
        self._used_dirty = True
        return record

    def flush_used(self) -> None:
        """Write down when each key was last used (the server calls this now and then)."""
        if not self._used_dirty or not self.root.is_dir():
            return
        self._used_dirty = False
        merged = {**self._read_used(), **self._used}
        replace_atomic(self._used_file, json.dumps(merged).encode(), self.root)

    def _refresh(self, *, force: bool = False) -> None:
        """Re-read the records when the file changed (looked at no more than every half second)."""
        clock = time.monotonic()
        if not force and clock - self._checked < _RELOAD_EVERY_S and self._seen is not None:
            return
        with self._mutex:
            self._checked = clock
            try:
                stat = self._file.stat()
                seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            except FileNotFoundError:
                seen = (0, 0, 0)
            if seen != self._seen:
                keys, revoked = self._read()
                self._by_id = {k.id: k for k in keys.values()}
                self._revoked = frozenset(revoked)
                self._seen = seen

    # -- files -------------------------------------------------------------------------------------

    def _digest(self, text: str) -> str:
        return hmac.new(self._secret(), text.encode(), hashlib.sha256).hexdigest()

    def _secret(self) -> bytes:
        if self._secret_bytes is None:
            path = self.root / "secret"
            if not path.exists():
                self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                except FileExistsError:  # another process made it first
                    pass
                else:
                    with os.fdopen(fd, "wb") as out:
                        out.write(secrets.token_bytes(32))
                        out.flush()
                        os.fsync(out.fileno())
            self._secret_bytes = path.read_bytes()
        return self._secret_bytes

    def _read(self) -> tuple[dict[str, ApiKey], dict[str, dict[str, Any]]]:
        """The keys by name, and the revoked certificates by fingerprint."""
        try:
            data = tomllib.loads(self._file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}, {}
        except tomllib.TOMLDecodeError as exc:
            raise StoreError(f"{self._file} is not valid TOML: {exc}.") from None
        keys = {name: ApiKey.from_record(name, record) for name, record in data.get("key", {}).items()}
        return keys, dict(data.get("revoked", {}))

    def _write(self, keys: dict[str, ApiKey], revoked: dict[str, dict[str, Any]]) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        document: dict[str, Any] = {"key": {name: k.to_record() for name, k in sorted(keys.items())}}
        if revoked:
            document["revoked"] = dict(sorted(revoked.items()))
        body = tomli_w.dumps(document)
        replace_atomic(self._file, body.encode(), self.root)
        self._seen = None  # this ring sees its own change at once

    def _read_used(self) -> dict[str, float]:
        try:
            data = json.loads(self._used_file.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}
        return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _not_found(name: str, keys: dict[str, ApiKey], *, device: bool) -> NotFound:
    if device:
        known = ", ".join(sorted(k for k, key in keys.items() if key.device)) or "none"
        return NotFound(f"no device is paired as {name!r}.", hint=f"paired devices: {known}.")
    return NotFound(f"there is no key named {name!r}.", hint="lanai keys list shows them.")


def ensure_admin_key(ring: KeyRing) -> Path | None:
    """On first run (no keys yet), create the key ``admin`` and write it to ``keys/admin.key``, readable
    by this user only; returns that path, or None when there were keys already."""
    if ring.list():
        return None
    text = ring.create("admin", "admin")
    path = ring.root / "admin.key"
    replace_atomic(path, (text + "\n").encode(), ring.root)  # its temp file is made 0600
    return path


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``45s`` or ``2w`` in seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if match is None:
        raise ConfigError(f"{text!r} is not a duration.", hint="use e.g. 30d, 12h, 90m or 2w.")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_rate(text: str) -> float:
    """``20/s``, ``600/m`` or ``1000/h`` in requests per second."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*/\s*([smh])\s*", text)
    if match is None or float(match.group(1)) <= 0:
        raise ConfigError(f"{text!r} is not a rate.", hint="use e.g. 20/s, 600/m or 1000/h.")
    return float(match.group(1)) / _UNITS[match.group(2)]
