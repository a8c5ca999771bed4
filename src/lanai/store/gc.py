"""Garbage collection: blobs no manifest references, and leftovers in staging."""

from __future__ import annotations

import shutil
import time

from lanai.store._fs import age_seconds, unlink_quietly
from lanai.store.blobs import Blobs
from lanai.store.layout import Layout
from lanai.store.manifest import read_manifest

__all__ = ["referenced_digests", "collect"]


def referenced_digests(layout: Layout) -> set[str]:
    """The digest of every file of every published version (tombstones reference nothing).

    Raises StoreError if a manifest cannot be read: its blobs would look unreferenced.
    """
    digests: set[str] = set()
    for name in layout.model_names():
        for version in layout.versions(name):
            try:
                manifest = read_manifest(layout.version_path(name, version))
            except FileNotFoundError:  # removed meanwhile
                continue
            digests.update(ref.sha256 for ref in manifest.files.values())
    return digests


def collect(layout: Layout, blobs: Blobs, *, grace_s: float) -> int:
    """Delete unreferenced blobs and staging entries older than ``grace_s``; return blobs deleted.

    The caller must make sure no writer is between writing a blob and publishing its manifest
    (``Store`` holds its gc lock exclusively), or pass a grace period longer than any import.
    """
    referenced = referenced_digests(layout)
    now = time.time()
    deleted = 0
    for digest in blobs.digests():
        if digest not in referenced and age_seconds(blobs.path(digest), now) >= grace_s:
            blobs.delete(digest)
            deleted += 1
    linked = layout.root / "linked"  # models linked beside their external data (store.external)
    if linked.is_dir():
        for entry in linked.iterdir():
            if entry.name not in referenced and age_seconds(entry, now) >= grace_s:
                shutil.rmtree(entry, ignore_errors=True)
    if layout.staging.is_dir():
        for entry in layout.staging.iterdir():
            if age_seconds(entry, now) < grace_s:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                unlink_quietly(entry)
    return deleted
