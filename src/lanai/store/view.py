"""Read-only access to a store: listing models, reading manifests, finding files.

Readers take no locks and write nothing: every file they read is replaced or published atomically,
and temp files live in ``staging/``, where readers never look.
"""

from __future__ import annotations

import builtins
import logging
from dataclasses import dataclass
from pathlib import Path

from lanai.errors import StoreError, VersionNotFound
from lanai.store.active import read_active
from lanai.store.blobs import Blobs, file_sha256
from lanai.store.external import ROLE_PREFIX, linked_model
from lanai.store.layout import Layout
from lanai.store.manifest import Manifest, read_manifest

__all__ = ["ModelSummary", "StoreView"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSummary:
    """One model in the store: its active version (None if none), its versions, and the task of its
    active (else latest) version. A damaged model is listed with ``task=""`` and ``problem`` saying
    what is wrong; its other fields are what could still be read."""

    name: str
    active: int | None
    versions: tuple[int, ...]
    task: str
    problem: str | None = None


class StoreView:
    """Read-only view of the store under ``root``; :class:`Store` adds the operations that write."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._layout = Layout(self.root)
        self._blobs = Blobs(self._layout.blobs, self._layout.staging)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r})"

    def list(self) -> builtins.list[ModelSummary]:
        """Every model that has at least one version, sorted by name (damaged ones included)."""
        summaries = []
        for name in self._layout.model_names():
            versions = self._layout.versions(name)
            if versions:
                summaries.append(self._summary(name, versions))
        return summaries

    def versions(self, name: str) -> builtins.list[int]:
        """The versions of model ``name``, ascending; ModelNotFound if there is no such model."""
        self._layout.require_model(name)
        return self._layout.versions(name)

    def active(self, name: str) -> int | None:
        """The active version of model ``name``, or None if none is active."""
        self._layout.require_model(name)
        state = read_active(self._layout.active_path(name))
        return None if state is None else state.version

    def manifest(self, name: str, version: int | None = None) -> Manifest:
        """The manifest of model ``name`` at ``version`` (None: the active version)."""
        if version is None:
            version = self.active(name)
            if version is None:
                raise VersionNotFound(
                    f"model {name!r} has no active version",
                    hint=f"activate one; {self._layout.versions_hint(name)}",
                )
        path = self._layout.require_version(name, version)
        manifest = read_manifest(path)
        if (manifest.name, manifest.version) != (name, version):
            raise StoreError(
                f"manifest {path} describes {manifest.name!r} version {manifest.version}",
                hint="manifests must not be moved by hand; remove this version and add it again",
            )
        return manifest

    def blob_path(self, digest: str) -> Path:
        """The path of the blob with this sha256 digest; StoreError if it is missing."""
        path = self._blobs.path(digest)
        if not path.is_file():
            raise StoreError(f"blob {digest} is missing from {self.root}", hint="add the model again")
        return path

    def file_path(self, manifest: Manifest, role: str) -> Path:
        """The path of the file playing ``role`` (``"model"``, ``"labels"``) in ``manifest``. A model with
        external data files is given linked beside them (see ``store.external``)."""
        ref = manifest.files.get(role)
        if ref is None:
            raise StoreError(
                f"{manifest.name!r} version {manifest.version} has no {role!r} file",
                hint=f"its files are: {', '.join(sorted(manifest.files)) or 'none'}",
            )
        path = self.blob_path(ref.sha256)
        files = manifest.files.items()
        external = {r.filename: self.blob_path(r.sha256) for k, r in files if k.startswith(ROLE_PREFIX)}
        if role == "model" and external:
            return linked_model(self.root / "linked", path, ref.filename, external)
        return path

    def verify(self, manifest: Manifest) -> None:
        """Check every file of ``manifest`` against its digest and size (blocking: it reads them all);
        StoreError names the first that does not match, e.g. bytes changed on a failing disk."""
        for role, ref in sorted(manifest.files.items()):
            path = self.blob_path(ref.sha256)
            try:
                digest, size = file_sha256(path)
            except OSError as err:
                raise StoreError(f"{manifest.name!r} version {manifest.version}: cannot read its {role} file "
                                 f"{ref.filename} ({path}): {err.strerror or err}") from None  # fmt: skip
            if digest != ref.sha256 or size != ref.size:
                raise StoreError(
                    f"{manifest.name!r} version {manifest.version}: its {role} file {ref.filename} no longer "
                    f"matches its digest (the blob {path.name[:12]}… was changed on disk).",
                    hint=f"the store is damaged (a failing disk?): remove that version (lanai models remove "
                    f"{manifest.name} {manifest.version}) and add or pull it again.",
                )

    def _summary(self, name: str, versions: builtins.list[int]) -> ModelSummary:
        active: int | None = None
        try:
            active = self.active(name)
            task = self.manifest(name, active if active in versions else versions[-1]).task
        except StoreError as err:
            log.warning("model %r in %s is damaged: %s", name, self.root, err)
            return ModelSummary(name, active, tuple(versions), "", problem=str(err))
        return ModelSummary(name, active, tuple(versions), task)
