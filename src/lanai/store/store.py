"""The model store: import, list, activate, roll back, remove and garbage-collect model versions."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lanai.errors import StoreError
from lanai.store._locks import LOCKS_WORK, FileLock
from lanai.store.active import ActiveState, update_active
from lanai.store.gc import collect
from lanai.store.importer import Inspect, ModelSpec, build_manifest, read_sources
from lanai.store.manifest import Manifest
from lanai.store.names import validate_name
from lanai.store.versions import publish, remove_model, retire_version
from lanai.store.view import ModelSummary, StoreView
from lanai.types import BatchingConfig, ImagePreprocess

__all__ = ["Store", "ModelSummary"]

log = logging.getLogger(__name__)

# Without flock (Windows) gc cannot see imports in flight; it only collects what is older than this.
_UNLOCKED_GRACE_S = 3600.0


class Store(StoreView):
    """The models under ``root`` (see DESIGN.md, "The store"); directories appear on first write.

    Reading is inherited from :class:`StoreView`. Several processes may share a store: a version is
    published with ``os.link`` of a complete, fsynced manifest (which fails if the number is taken),
    the active file is replaced atomically and blobs are renamed into place whole, so a crash at any
    instant leaves the old or the new state.
    """

    def __init__(self, root: Path | str) -> None:
        super().__init__(root)
        # gc vs. writers: everything that creates files in staging/, or blobs no manifest references
        # yet, holds this lock shared; gc holds it exclusively. So gc never deletes a blob an import
        # is about to reference, nor a temp file in use, without guessing how long an import takes.
        # flock locks die with their process, so a crashed writer never blocks gc.
        self._gc_lock = FileLock(self._layout.locks / "gc.lock")
        # Serialises read-modify-write of active files and removals, so no history entry is lost.
        self._meta_lock = FileLock(self._layout.locks / "meta.lock")

    def add(
        self,
        path: Path,
        *,
        name: str,
        task: str,
        inspect: Inspect,
        backend: str = "onnx",
        labels: Path | None = None,
        preprocess: ImagePreprocess | None = None,
        batching: BatchingConfig | None = None,
        backend_options: dict[str, Any] | None = None,
        provenance: dict[str, Any] | None = None,
        attachments: Mapping[str, Path] | None = None,
        activate: bool | None = None,
    ) -> Manifest:
        """Import the model file ``path`` as the next version of ``name``; return its manifest.

        ``inspect(blob_path)`` is the caller's hook: it loads the copied file on its backend and
        returns ``(inputs, outputs)``. If it raises, nothing is published. ``attachments`` are more
        files to keep with the version, by role (e.g. a report). The new version becomes active when
        ``activate`` is true, never when it is false, and by default when the model has no active
        version yet.
        """
        spec = ModelSpec(
            path=Path(path),
            name=validate_name(name),
            task=task,
            backend=backend,
            labels=None if labels is None else Path(labels),
            preprocess=preprocess,
            batching=batching or BatchingConfig(),
            backend_options=dict(backend_options or {}),
            provenance=dict(provenance or {}),
            attachments={role: Path(file) for role, file in (attachments or {}).items()},
        )
        labels_file = read_sources(spec)
        self._ensure_dirs()
        with self._gc_lock.shared():
            manifest = publish(self._layout, build_manifest(spec, labels_file, self._blobs, inspect))
        version = manifest.version
        if activate is False:
            return manifest

        def change(old: ActiveState | None) -> ActiveState:
            if old is None:
                return ActiveState(version)
            return old.activated(version) if activate else old

        self._update_active(name, change, lenient=True)
        return manifest

    def activate(self, name: str, version: int) -> None:
        """Make ``version`` the active version of ``name``, remembering the one it replaces.

        A damaged active file is overwritten (its history is lost).
        """

        def change(old: ActiveState | None) -> ActiveState:
            self._layout.require_version(name, version)
            return ActiveState(version) if old is None else old.activated(version)

        self._update_active(name, change, lenient=True)

    def rollback(self, name: str) -> int:
        """Reactivate the version that was active before the current one; return its number.

        Removed versions are skipped. Rolling back twice goes back two steps (an undo stack).
        """

        def change(old: ActiveState | None) -> ActiveState:
            existing = set(self._layout.versions(name))
            new = None if old is None else old.rolled_back(existing)
            if new is None:
                raise StoreError(
                    f"model {name!r} has no earlier active version to roll back to",
                    hint=f"activate a version instead; {self._layout.versions_hint(name)}",
                )
            return new

        return self._update_active(name, change).version

    def remove(self, name: str, version: int | None = None) -> None:
        """Remove one version of ``name`` (never the active one), or with ``version=None`` the
        whole model; then delete the blobs nothing references any more (:meth:`gc`).
        """
        self._layout.require_model(name)
        self._ensure_dirs()
        with self._gc_lock.shared(), self._meta_lock.exclusive():
            if version is None:
                remove_model(self._layout, name)
            else:
                retire_version(self._layout, name, version)
        try:
            self.gc()
        except StoreError as err:  # the removal itself is done; only the clean-up was refused
            log.warning("removed, but gc was skipped: %s", err)

    def gc(self) -> int:
        """Delete blobs no manifest references, and staging leftovers; return how many blobs went.

        Waits for imports in progress. Refuses (StoreError) if a manifest cannot be read, since its
        blobs would look unreferenced: remove that version first.
        """
        if not self._layout.blobs.is_dir():
            return 0
        with self._gc_lock.exclusive():
            grace_s = 0.0 if LOCKS_WORK else _UNLOCKED_GRACE_S
            deleted = collect(self._layout, self._blobs, grace_s=grace_s)
        if deleted:
            log.info("gc deleted %d unreferenced blobs from %s", deleted, self.root)
        return deleted

    def _ensure_dirs(self) -> None:
        layout = self._layout
        for directory in (layout.models, layout.staging, layout.blobs, layout.locks):
            directory.mkdir(parents=True, exist_ok=True)

    def _update_active(
        self, name: str, change: Callable[[ActiveState | None], ActiveState], *, lenient: bool = False
    ) -> ActiveState:
        self._layout.require_model(name)
        self._ensure_dirs()
        with self._gc_lock.shared(), self._meta_lock.exclusive():
            path = self._layout.active_path(name)
            return update_active(path, change, self._layout.staging, lenient=lenient)
