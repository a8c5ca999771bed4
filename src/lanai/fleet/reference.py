"""Where an artifact lives: ``REGISTRY/REPOSITORY[:TAG][@sha256:DIGEST]``, as docker and oras write it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from lanai.errors import BadInput

__all__ = ["Reference", "parse_reference"]

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_HOST = re.compile(r"(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::[0-9]{1,5})?")

_FORM = "REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@sha256:DIGEST, e.g. registry.local:5000/models/defects:stable"


@dataclass(frozen=True)
class Reference:
    registry: str
    """host[:port]"""
    repository: str
    tag: str | None = None
    digest: str | None = None
    """``sha256:…``; when given, it is what is fetched and checked, and the tag is only a label."""

    @property
    def ref(self) -> str:
        """What the registry's manifest URL takes: the digest if known, else the tag."""
        return self.digest or self.tag or "latest"

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, self.tag, digest)

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str) -> Reference:
    """``text`` as a reference; BadInput says which part is wrong. The registry must be named: a LAN
    box has no default registry to guess."""
    rest, _, digest = text.strip().partition("@")
    if digest and not _DIGEST.fullmatch(digest):
        raise BadInput(f"{digest!r} in {text!r} is not a sha256 digest.", hint=f"write {_FORM}.")
    registry, slash, path = rest.partition("/")
    if (
        not slash
        or not _HOST.fullmatch(registry)
        or not ("." in registry or ":" in registry or registry == "localhost")
    ):
        raise BadInput(f"{text!r} names no registry.", hint=f"write {_FORM}.")
    repository, tag = path, None
    colon = path.rfind(":")
    if colon > path.rfind("/"):
        repository, tag = path[:colon], path[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise BadInput(
                f"{tag!r} in {text!r} is not a valid tag.", hint="a tag is letters, digits, '_', '.' and '-'."
            )
    if not _REPOSITORY.fullmatch(repository):
        raise BadInput(
            f"{repository!r} in {text!r} is not a valid repository name.",
            hint="lowercase letters, digits and separators (., _, -), in path components joined by '/'.",
        )
    return Reference(registry, repository, tag, digest or None)
