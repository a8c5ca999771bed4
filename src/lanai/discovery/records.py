"""The DNS-SD TXT record of a lanai box: what it holds, how it is built within its size limit, how it is read.

Anyone on the link reads these records, so they hold no secrets: an id (the TLS certificate's fingerprint
prefix, or a random box id), the version, the ports, whether TLS is on, the tasks and model names, and
whether the box is ready or draining. Pure functions: no sockets, no zeroconf.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "SERVICE_TYPE",
    "TXT_LIMIT",
    "ENTRY_LIMIT",
    "Advert",
    "build_txt",
    "parse_txt",
    "txt_size",
    "instance_label",
]

SERVICE_TYPE = "_lanai._tcp.local."
TXT_LIMIT = 400
"""Bytes the whole TXT record may take on the wire (each entry is a length byte and ``key=value``)."""
ENTRY_LIMIT = 255
"""Bytes one ``key=value`` entry may take (its length is one byte)."""
STATES = ("ready", "draining")


@dataclass(frozen=True)
class Advert:
    """What a box says about itself in its TXT record."""

    id: str
    version: str
    http_port: int
    grpc_port: int | None = None
    tls: bool = False
    tasks: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    state: str = "ready"
    more_models: int = 0
    """Models left out of ``models`` to keep the record small (list them over HTTP)."""


def build_txt(advert: Advert, limit: int = TXT_LIMIT) -> dict[str, str]:
    """The TXT entries of ``advert``, in order; ``models`` drops its last names (counted in ``more``) so that
    the whole record fits in ``limit`` bytes."""
    if advert.state not in STATES:
        raise ValueError(f"state {advert.state!r} is not one of {', '.join(STATES)}")
    txt = {
        "id": _clean(advert.id),
        "version": _clean(advert.version),
        "http": str(int(advert.http_port)),
        "grpc": "" if advert.grpc_port is None else str(int(advert.grpc_port)),
        "tls": "1" if advert.tls else "0",
        "state": advert.state,
        "tasks": _join(sorted(set(advert.tasks))),
    }
    txt = _fit_entries(txt)
    models = [_clean(m) for m in advert.models if _clean(m)]
    fixed = txt_size(txt)
    if _entry_size("models", _join(models)) <= min(limit - fixed, ENTRY_LIMIT + 1):
        txt["models"] = _join(models)
        return txt
    # Drop names from the end, leaving room for "more=<count>".
    room = min(limit - fixed - _entry_size("more", str(len(models))), ENTRY_LIMIT + 1)
    kept: list[str] = []
    for name in models:
        if _entry_size("models", _join([*kept, name])) > room:
            break
        kept.append(name)
    txt["models"] = _join(kept)
    txt["more"] = str(len(models) - len(kept))
    return txt


def parse_txt(properties: Mapping[bytes | str, bytes | str | None]) -> Advert:
    """The :class:`Advert` in a TXT record (as zeroconf gives it: bytes keys and values). Missing or
    malformed fields read as empty; unknown keys are ignored (newer boxes may add some)."""
    txt = {_text(k).lower(): _text(v) for k, v in properties.items()}
    return Advert(
        id=txt.get("id", ""),
        version=txt.get("version", ""),
        http_port=_port(txt.get("http")) or 0,
        grpc_port=_port(txt.get("grpc")),
        tls=txt.get("tls", "0") == "1",
        tasks=_split(txt.get("tasks", "")),
        models=_split(txt.get("models", "")),
        state=txt.get("state", "") or "unknown",
        more_models=_port(txt.get("more")) or 0,
    )


def txt_size(txt: Mapping[str, str]) -> int:
    """Bytes the TXT record takes on the wire."""
    return sum(_entry_size(k, v) for k, v in txt.items())


def instance_label(hostname: str) -> str:
    """The DNS-SD instance label for ``hostname``: its first label, printable, at most 63 bytes."""
    label = hostname.split(".")[0].strip()
    label = "".join(c for c in label if c.isprintable()) or "lanai"
    while len(label.encode()) > 63:
        label = label[:-1]
    return label


def _entry_size(key: str, value: str) -> int:
    return 1 + len(key.encode()) + 1 + len(value.encode())


def _fit_entries(txt: dict[str, str]) -> dict[str, str]:
    """Every entry within ENTRY_LIMIT bytes (only the free-text fields could exceed it)."""
    for key, value in txt.items():
        while len(f"{key}={value}".encode()) > ENTRY_LIMIT:
            value = value[:-1]
        txt[key] = value
    return txt


def _clean(value: str) -> str:
    return "".join(c for c in str(value) if c.isprintable() and c != ",").strip()


def _join(items: Iterable[str]) -> str:
    return ",".join(items)


def _split(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _port(value: str | None) -> int | None:
    try:
        port = int(value or "")
    except ValueError:
        return None
    return port if 0 < port < 65536 else None
