"""The on-disk model store: content-addressed blobs, versioned manifests, an atomic active pointer.

See DESIGN.md, "The store". Everything takes the store root explicitly; nothing reads the environment.
"""

from __future__ import annotations

from lanai.store.blobs import Blobs, check_digest
from lanai.store.importer import Inspect
from lanai.store.labels import check_label_count, parse_labels
from lanai.store.manifest import FileRef, Manifest, read_manifest
from lanai.store.names import NAME_PATTERN, validate_name
from lanai.store.store import Store
from lanai.store.view import ModelSummary, StoreView

__all__ = [
    "NAME_PATTERN",
    "Blobs",
    "FileRef",
    "Inspect",
    "Manifest",
    "ModelSummary",
    "Store",
    "StoreView",
    "check_digest",
    "check_label_count",
    "parse_labels",
    "read_manifest",
    "validate_name",
]
