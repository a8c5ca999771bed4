"""Where things live in a store, and what exists there (read-only)."""

from __future__ import annotations

import re
from pathlib import Path

from lanai.errors import InvalidName, ModelNotFound, VersionNotFound
from lanai.store.names import validate_name

__all__ = ["Layout"]

_VERSION_FILE = re.compile(r"([1-9][0-9]{0,17})\.(toml|removed)")


class Layout:
    """The paths of a store under ``root``.

    ``models/<name>/versions/<n>.toml`` is a published version; ``<n>.removed`` is the tombstone of a
    removed one, kept so that a version number is never handed out twice. Any other file in
    ``versions/`` (there should be none: temp files live in ``staging/``) is ignored.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.models = root / "models"
        self.blobs = root / "blobs" / "sha256"
        self.staging = root / "staging"
        self.locks = root / "locks"

    def model_dir(self, name: str) -> Path:
        return self.models / validate_name(name)

    def versions_dir(self, name: str) -> Path:
        return self.model_dir(name) / "versions"

    def version_path(self, name: str, version: int) -> Path:
        return self.versions_dir(name) / f"{version}.toml"

    def active_path(self, name: str) -> Path:
        return self.model_dir(name) / "active"

    def model_names(self) -> list[str]:
        """Names of the model directories, sorted (entries that are not valid names are ignored)."""
        if not self.models.is_dir():
            return []
        return sorted(p.name for p in self.models.iterdir() if _is_name(p.name) and p.is_dir())

    def versions(self, name: str) -> list[int]:
        """Published versions of ``name``, ascending ([] if the model does not exist)."""
        return sorted(n for n, kind in self._version_files(name) if kind == "toml")

    def next_version(self, name: str) -> int:
        """One more than any version ``name`` has had, removed ones included."""
        return max((n for n, _ in self._version_files(name)), default=0) + 1

    def require_model(self, name: str) -> Path:
        """The directory of model ``name``; ModelNotFound listing the models if there is none."""
        directory = self.model_dir(name)
        if not directory.is_dir():
            names = [n for n in self.model_names() if self.versions(n)]
            hint = f"models in the store: {', '.join(names)}" if names else "the store has no models"
            raise ModelNotFound(f"no model named {name!r} in the store at {self.root}", hint=hint)
        return directory

    def require_version(self, name: str, version: int) -> Path:
        """The manifest path of ``name`` at ``version``; ModelNotFound/VersionNotFound if missing."""
        self.require_model(name)
        path = self.version_path(name, version) if _is_version(version) else None
        if path is None or not path.is_file():
            raise VersionNotFound(f"model {name!r} has no version {version!r}", hint=self.versions_hint(name))
        return path

    def versions_hint(self, name: str) -> str:
        versions = self.versions(name)
        if not versions:
            return f"{name!r} has no versions; add one"
        return f"versions of {name!r}: {', '.join(map(str, versions))}"

    def _version_files(self, name: str) -> list[tuple[int, str]]:
        try:
            entries = list(self.versions_dir(name).iterdir())
        except FileNotFoundError:
            return []
        found = []
        for entry in entries:
            match = _VERSION_FILE.fullmatch(entry.name)
            if match:
                found.append((int(match[1]), match[2]))
        return found


def _is_name(name: str) -> bool:
    try:
        validate_name(name)
    except InvalidName:
        return False
    return True


def _is_version(version: object) -> bool:
    return isinstance(version, int) and not isinstance(version, bool) and version >= 1
