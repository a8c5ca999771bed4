"""The admin API's bodies as wire values (``/v1/admin/...``: what a console shows and changes).

Models and their versions (``AdminModelList``, ``VersionReport``), switching the version served
(``ActivateRequest`` → ``ActivateResult``), API keys (``KeyList``, ``KeyRequest`` → ``KeyCreated``,
``KeyRevoked``), paired devices (``DeviceList``, ``DeviceRevoked``) and the served certificate
(``TlsInfo``). Times are ISO 8601 in UTC (``2026-12-01T13:04:36Z``); versions are strings, as in the
Open Inference Protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from lanai.protocol.wire import Wire, doc

__all__ = [
    "AdminVersion",
    "AdminModel",
    "AdminModelList",
    "VersionReport",
    "ActivateRequest",
    "ActivateResult",
    "KeyInfo",
    "KeyList",
    "KeyRequest",
    "KeyCreated",
    "KeyRevoked",
    "DeviceInfo",
    "DeviceList",
    "DeviceRevoked",
    "TlsInfo",
]

Role = Literal["infer", "admin"]
ModelState = Literal["loaded", "available", "failed", "unloaded"]


@dataclass(frozen=True)
class AdminVersion(Wire):
    """One version of a model in the store."""

    version: str = doc("Its number.", examples=["1"])
    created: str = doc("When it was added (ISO 8601, UTC).")
    backend: str = doc("The runtime it runs on, e.g. onnx or llamacpp.")
    size_bytes: int = doc("The size of all its files (weights, labels, tokenizer, report).", minimum=0)
    active: bool = doc("Whether it is the store's active version.")
    report: bool = doc("Whether an optimisation report is stored with it (lanai optimize).")


@dataclass(frozen=True)
class AdminModel(Wire):
    """A model in the store, and what the server does with it."""

    name: str = doc("The model's name.")
    task: str = doc("What it does, e.g. classify or chat (empty when its manifest cannot be read).")
    active: str | None = doc("The store's active version; null when none is.")
    serving: str | None = doc("The version loaded in the server now; null when it is not loaded.")
    state: ModelState = doc(
        "loaded: it serves; failed: its active version did not load; available: it loads on its first "
        "request (load = demand); unloaded: not loaded (unloaded by an admin, or no active version)."
    )
    versions: list[AdminVersion] = doc("Its versions, newest first.")
    error: str | None = doc("Why it failed to load, or what is damaged in the store.", default=None, omit_none=True)


@dataclass(frozen=True)
class AdminModelList(Wire):
    models: list[AdminModel] = doc("Every model in the store, by name.")


@dataclass(frozen=True)
class VersionReport(Wire):
    """The optimisation report stored with a version (``lanai optimize``)."""

    model: str = doc("The model's name.")
    version: str = doc("The version.")
    markdown: str = doc("The report, as Markdown.")
    figures: dict[str, Any] = doc("The report's figures (report.json); {} when it was stored without them.")
    chart: bool = doc("Whether a chart is stored with it (GET .../report.png).")


@dataclass(frozen=True)
class ActivateRequest(Wire):
    version: str = doc("The version to activate and serve.", examples=["2"], maxLength=20)


@dataclass(frozen=True)
class ActivateResult(Wire):
    """The model's version after an activation or a rollback: active in the store and serving."""

    name: str = doc("The model's name.")
    version: str = doc("The version now active.")
    serving: str = doc("The version the server now serves (the same).")
    previous: str | None = doc("The version it served before; null when it was not loaded.")


@dataclass(frozen=True)
class KeyInfo(Wire):
    """An API key, without its secret (only a digest of it is stored)."""

    name: str = doc("The key's name.")
    role: Role = doc("infer: inference; admin: everything.")
    models: list[str] = doc("Models it may use; empty: all.")
    rate: float | None = doc("Requests per second it may make; null: no limit.")
    created: str | None = doc("When it was made (ISO 8601, UTC).")
    expires: str | None = doc("When it stops working; null: never.")
    last_used: str | None = doc("When the server last saw it (written down now and then); null: not yet.")
    concurrency: int | None = doc("Requests it may have running at once; null: no limit.")
    device: bool = doc("Made by pairing a device (see /v1/admin/devices) rather than created here.")


@dataclass(frozen=True)
class KeyList(Wire):
    keys: list[KeyInfo] = doc("Every key, by name.")


@dataclass(frozen=True)
class KeyRequest(Wire):
    """A key to create."""

    name: str = doc("Its name: a-z, 0-9, '.', '_' or '-', e.g. front-desk.", maxLength=64)
    role: Role = doc("infer: inference only; admin: everything.")
    models: list[str] = doc("Models it may use; empty: all.", default=[])
    rate: float | None = doc("Requests per second it may make; null: no limit.", default=None, exclusiveMinimum=0)


@dataclass(frozen=True)
class KeyCreated(Wire):
    name: str = doc("The key's name.")
    role: Role = doc("Its role.")
    key: str = doc("The key itself: shown in this answer only, never again (only its digest is kept).")


@dataclass(frozen=True)
class KeyRevoked(Wire):
    name: str = doc("The key's name.")
    revoked: bool = doc("Always true: a running server refuses it from now on.")


@dataclass(frozen=True)
class DeviceInfo(Wire):
    """A device paired with the box (lanai pair): a key, and under mTLS a client certificate."""

    name: str = doc("The device's name (its key's name).")
    role: Role = doc("Its role.")
    fingerprint: str | None = doc("SHA-256 of the client certificate it was issued; null without mTLS.")
    paired_at: str | None = doc("When it paired (ISO 8601, UTC).")
    expires: str | None = doc("When its key stops working; null: never.")
    models: list[str] = doc("Models it may use; empty: all.")
    last_used: str | None = doc("When the server last saw it; null: not yet.")


@dataclass(frozen=True)
class DeviceList(Wire):
    devices: list[DeviceInfo] = doc("Every paired device, by name.")


@dataclass(frozen=True)
class DeviceRevoked(Wire):
    name: str = doc("The device's name.")
    revoked: bool = doc("Always true: its key and its certificate are refused from now on.")


@dataclass(frozen=True)
class TlsInfo(Wire):
    """The certificate the server serves."""

    enabled: bool = doc("Whether the server serves HTTPS (and gRPC over TLS).")
    fingerprint_sha256: str | None = doc("SHA-256 of the served certificate, as AB:CD:… (what browsers show).")
    subject: str | None = doc("Its subject, e.g. CN=lanai.")
    not_after: str | None = doc("When it expires (ISO 8601, UTC).")
    days_left: int | None = doc("Whole days until then (negative once expired).")
    mtls: bool = doc("Whether clients need a certificate of the store's CA (mTLS).")
    issuer: str | None = doc("Who signed it, e.g. the store's CA.", default=None)
