"""The access rules every door applies: who a caller is, and whether it may do what it asks.

A call needs one of three levels of access (its door decides which; anything a door does not list is
``ADMIN``, so a new endpoint is protected until someone makes it public on purpose):

- ``PUBLIC``: liveness and readiness, for load balancers; anyone.
- ``INFER``: inference, tasks, language models, pipelines and read-only metadata. Open to any caller
  by default, so that tutorials' clients work on the LAN; ``auth = "required"`` asks for a key.
- ``ADMIN``: loading and unloading models, full health, metrics: an admin key, or a client on this
  machine (``admin_loopback``, on by default).

A client certificate from the store's CA (under mTLS) stands in for a key: its role is the one it
names (``OU=infer`` or ``OU=admin``), and a revoked one is refused everywhere.

Keys may be limited to some models and to a request rate (429 with ``Retry-After`` past it). A caller
that keeps presenting bad keys is slowed down the same way, and every refusal is counted.
"""

from __future__ import annotations

import enum
import hmac
import ipaddress
import math
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Literal

from lanai.config import Settings
from lanai.errors import ConfigError, PermissionDenied, RateLimited, Unauthenticated
from lanai.security.identity import PeerCertificate
from lanai.security.keys import KeyRing
from lanai.security.network import NetworkPolicy
from lanai.telemetry.metrics import Metrics

__all__ = ["Access", "Principal", "Guard", "ANONYMOUS"]

_FAILURES_ALLOWED = 10
"""Bad keys one address may present per minute before it has to wait."""
_FAILURE_WINDOW_S = 60.0
_KEY_HINT = "send the header 'Authorization: Bearer <key>' (or 'X-API-Key: <key>'); lanai keys create makes one."


class Access(enum.IntEnum):
    PUBLIC = 0
    INFER = 1
    ADMIN = 2


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key (by its name), this machine, or nobody in particular."""

    name: str
    role: Literal["anonymous", "infer", "admin"]
    models: tuple[str, ...] = ()
    rate: float | None = None
    concurrency: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def allows_model(self, model: str) -> bool:
        return not self.models or model in self.models


ANONYMOUS = Principal("", "anonymous")
_LOOPBACK = Principal("this machine", "admin")


class _Bucket:
    """A token bucket: ``rate`` per second, a burst of one second's worth."""

    def __init__(self, rate: float, now: float) -> None:
        self.rate, self.capacity = rate, max(1.0, rate)
        self.tokens, self.stamp = self.capacity, now

    def take(self, now: float) -> float:
        """0 if a request may go now, else the seconds until it may."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class Guard:
    """Identifies callers and checks what they ask. Thread-safe; one per server."""

    def __init__(self, settings: Settings, keys: KeyRing | None, metrics: Metrics | None = None) -> None:
        if settings.auth not in ("lan", "required"):
            raise ConfigError(f"auth = {settings.auth!r} is not a mode lanai knows.", hint='use "lan" or "required".')
        self.keys = keys
        self.network = NetworkPolicy(settings.allowed_networks, settings.trusted_proxies)
        self.required = settings.auth == "required" or bool(settings.api_key)
        # the single shared key of old asked every caller for the key, this machine's too
        self.admin_loopback = settings.admin_loopback and not settings.api_key
        self.require_certificate = settings.tls_client_ca is not None
        """mTLS: only pairing may be done without a client certificate (see ``check_certificate``); with
        ``tls_client_pins``, only the pinned certificates are accepted."""
        self.pins = frozenset(_fingerprint(p) for p in settings.tls_client_pins)
        self._legacy = settings.api_key.encode() if settings.api_key else None
        self._metrics_key = settings.metrics_key.encode() if settings.metrics_key else None
        self._metrics = metrics
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}
        self._running: Counter[str] = Counter()
        self._failures: dict[str, deque[float]] = {}

    def admit(self, peer: str | None, forwarded_for: str | None = None) -> str | None:
        """The client's address (see ``NetworkPolicy.client``); PermissionDenied if its network may not
        talk to this box at all."""
        client = self.network.client(peer, forwarded_for)
        try:
            self.network.check(client)
        except PermissionDenied:
            self._count("network")
            raise
        if forwarded_for and _is_loopback(client):
            # a proxy on this box that nobody listed in trusted_proxies: its clients are not this machine
            return None
        return client

    def identify(
        self, token: str | None, peer: str | None, access: Access = Access.ADMIN, now: float | None = None,
        cert: PeerCertificate | None = None,
    ) -> Principal:  # fmt: skip
        """The caller presenting ``token`` (None: no credential) and the verified client certificate
        ``cert`` (if any) from address ``peer``, for a call that needs ``access``. A valid key wins, then
        a certificate that names a role. Where anyone may make the call (the health checks; inference
        unless keys are required), a key that is not valid is not an error: OpenAI's and Ollama's
        clients always send one, often a placeholder, and the call is allowed without it anyway."""
        now = time.monotonic() if now is None else now
        if cert is not None and self.keys is not None and self.keys.certificate_revoked(cert.fingerprint):
            self._failed(peer, now, "revoked_certificate")
            raise Unauthenticated(
                f"the client certificate {cert.name!r} has been revoked.",
                hint="pair this device again (lanai pair), or ask for a new certificate (lanai certs client).",
            )
        if token:
            principal = self._by_key(token)
            if principal is not None:
                return principal
        if cert is not None and cert.role is not None:
            return Principal(f"certificate {cert.name}", cert.role)
        if token:
            if access is Access.PUBLIC or (access is Access.INFER and not self.required):
                return _LOOPBACK if self.admin_loopback and _is_loopback(peer) else ANONYMOUS
            self._check_failures(peer, now)
            self._failed(peer, now, "invalid")
            raise Unauthenticated("the API key is not valid: unknown, revoked or expired.", hint=_KEY_HINT)
        if self.admin_loopback and _is_loopback(peer):
            return _LOOPBACK
        return ANONYMOUS

    def check_certificate(self, cert: PeerCertificate | None, peer: str | None) -> None:
        """Under mTLS, Unauthenticated for a caller without a client certificate (the doors let one
        through the handshake only to pair; every other call needs the certificate), or with one that is
        not pinned when the server pins its clients' certificates."""
        if self.require_certificate and cert is None:
            self._count("missing_certificate")
            raise Unauthenticated(
                "this server requires a client certificate (mutual TLS).",
                hint="pair this device (lanai pair BOX CODE), or use one from lanai certs client NAME.",
            )
        if self.pins and cert is not None and cert.fingerprint not in self.pins:
            self._count("unpinned_certificate")
            raise Unauthenticated(
                f"the client certificate {cert.name!r} is not one this server accepts (it pins its clients').",
                hint="ask the box's admin to add its SHA-256 fingerprint to tls_client_pins.",
            )

    def _by_key(self, token: str) -> Principal | None:
        if self._legacy is not None and hmac.compare_digest(token.encode(), self._legacy):
            return Principal("api_key", "admin")
        record = self.keys.verify(token) if self.keys is not None else None
        if record is None:
            return None
        return Principal(record.name, record.role, record.models, record.rate, record.concurrency)

    def is_metrics_key(self, token: str | None) -> bool:
        if not token or self._metrics_key is None:
            return False
        return hmac.compare_digest(token.encode(), self._metrics_key)

    def authorize(self, who: Principal, access: Access, model: str | None = None, now: float | None = None) -> None:
        """Raise Unauthenticated, PermissionDenied or RateLimited unless ``who`` may do this now."""
        if access is Access.PUBLIC:
            return
        if who.role == "anonymous":
            if access is Access.ADMIN:
                self._count("missing")
                raise Unauthenticated("this needs an admin key.", hint=_KEY_HINT)
            if self.required:
                self._count("missing")
                raise Unauthenticated("this server needs an API key.", hint=_KEY_HINT)
            return
        if access is Access.ADMIN and not who.is_admin:
            self._count("forbidden")
            raise PermissionDenied(f"key {who.name!r} has role {who.role}; this needs an admin key.")
        if model is not None:
            self.check_model(who, model)
        if who.rate is not None:
            self._take(who, time.monotonic() if now is None else now)
        if who.concurrency is not None:
            self._enter(who)

    def release(self, who: Principal) -> None:
        """A call that ``authorize`` let through has ended (every door calls this, whatever the outcome)."""
        if who.concurrency is not None:
            with self._lock:
                self._running[who.name] -= 1

    def _enter(self, who: Principal) -> None:
        assert who.concurrency is not None
        with self._lock:
            running = self._running[who.name]
            if running < who.concurrency:
                self._running[who.name] = running + 1
                return
        self._count("concurrency")
        raise RateLimited(
            f"key {who.name!r} already has {running} requests running, its limit.",
            hint="wait for one to finish, or ask for a key with a higher --concurrency.",
            retry_after=1.0,
        )

    def check_model(self, who: Principal, model: str) -> None:
        if not who.allows_model(model):
            self._count("forbidden")
            raise PermissionDenied(
                f"key {who.name!r} may not use model {model!r}.", hint=f"it may use: {', '.join(who.models)}."
            )

    def _take(self, who: Principal, now: float) -> None:
        assert who.rate is not None
        with self._lock:
            bucket = self._buckets.get(who.name)
            if bucket is None or bucket.rate != who.rate:
                bucket = self._buckets[who.name] = _Bucket(who.rate, now)
            wait = bucket.take(now)
        if wait:
            self._count("rate_limited")
            raise RateLimited(
                f"key {who.name!r} is limited to {who.rate:g} requests per second.",
                hint=f"retry in {math.ceil(wait)} s, or ask for a key with a higher --rate.",
                retry_after=wait,
            )

    def _check_failures(self, peer: str | None, now: float) -> None:
        with self._lock:
            recent = self._failures.get(peer or "")
            while recent and now - recent[0] > _FAILURE_WINDOW_S:
                recent.popleft()
            if not recent or len(recent) < _FAILURES_ALLOWED:
                return
            wait = _FAILURE_WINDOW_S - (now - recent[0])
        self._count("too_many_failures")
        raise RateLimited(f"too many bad keys from {peer}.", hint=f"retry in {math.ceil(wait)} s.", retry_after=wait)

    def _failed(self, peer: str | None, now: float, reason: str) -> None:
        with self._lock:
            recent = self._failures.setdefault(peer or "", deque())
            recent.append(now)
            if len(self._failures) > 10_000:  # many addresses: forget the quiet ones
                self._failures = {p: d for p, d in self._failures.items() if d and now - d[-1] < _FAILURE_WINDOW_S}
        self._count(reason)

    def _count(self, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.auth_refusals.labels(reason).inc()


def _fingerprint(text: str) -> str:
    """A SHA-256 fingerprint as ``PeerCertificate`` writes it (colon pairs, upper case), from any spelling."""
    digits = text.replace(":", "").replace(" ", "").upper()
    if len(digits) != 64 or any(c not in "0123456789ABCDEF" for c in digits):
        raise ConfigError(
            f"tls_client_pins: {text!r} is not a SHA-256 fingerprint.", hint="64 hex digits, e.g. AB:CD:…"
        )
    return ":".join(digits[i : i + 2] for i in range(0, 64, 2))


def _is_loopback(peer: str | None) -> bool:
    if not peer:
        return False
    try:
        return ipaddress.ip_address(peer.split("%")[0]).is_loopback
    except ValueError:
        return peer in ("localhost", "testclient")
