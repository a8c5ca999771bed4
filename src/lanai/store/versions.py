"""Publishing version manifests, and taking versions and whole models away, crash-safely."""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import replace

from lanai.errors import StoreError
from lanai.store._fs import fsync_dir, unlink_quietly, write_temp
from lanai.store.active import read_active
from lanai.store.layout import Layout
from lanai.store.manifest import Manifest

__all__ = ["publish", "retire_version", "remove_model"]

_MAX_TRIES = 1000


def publish(layout: Layout, draft: Manifest) -> Manifest:
    """Publish ``draft`` as the next free version of its model; return it with that version.

    The manifest is written whole to a temp file in staging and fsynced, then hard-linked to
    ``versions/<n>.toml``. ``os.link`` fails if ``n`` exists, so concurrent writers (threads or
    processes) each get their own number, and a reader never sees a half-written manifest.
    """
    versions_dir = layout.versions_dir(draft.name)
    for _ in range(_MAX_TRIES):
        manifest = replace(draft, version=layout.next_version(draft.name))
        data = manifest.to_toml().encode("utf-8")  # fails before anything is created
        versions_dir.mkdir(parents=True, exist_ok=True)
        tmp = write_temp(layout.staging, data)
        try:
            os.link(tmp, versions_dir / f"{manifest.version}.toml")
        except (FileExistsError, FileNotFoundError):
            continue  # another writer took the number, or removed the model: try again
        except OSError as err:
            raise StoreError(
                f"cannot publish a manifest in {versions_dir}: {err.strerror or err}",
                hint="the store needs a filesystem with hard links (ext4, xfs, btrfs, APFS, NTFS)",
            ) from err
        finally:
            unlink_quietly(tmp)
        fsync_dir(versions_dir)
        return manifest
    raise StoreError(f"no free version number found for {draft.name!r}", hint="try again")


def retire_version(layout: Layout, name: str, version: int) -> None:
    """Remove a version that is not active, leaving a ``<n>.removed`` tombstone.

    The tombstone (the old manifest, renamed) keeps the number from being reused; readers and gc
    only look at ``*.toml``. The caller holds the lock that serialises activations.
    """
    path = layout.require_version(name, version)
    state = read_active(layout.active_path(name))
    if state is not None and state.version == version:
        raise StoreError(
            f"version {version} of {name!r} is active and cannot be removed",
            hint=f"activate another version first, or remove the whole model with remove({name!r})",
        )
    os.replace(path, path.with_suffix(".removed"))
    fsync_dir(path.parent)


def remove_model(layout: Layout, name: str) -> None:
    """Remove the directory of model ``name``: one atomic rename into staging, then delete it."""
    directory = layout.require_model(name)
    grave = layout.staging / f"removed-{name}-{uuid.uuid4().hex}"
    os.replace(directory, grave)
    fsync_dir(layout.models)
    shutil.rmtree(grave, ignore_errors=True)  # a crash here leaves garbage that gc deletes
