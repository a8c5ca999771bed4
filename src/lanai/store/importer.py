"""Turning a model file (and its labels) into blobs plus an unpublished manifest."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lanai.errors import LanaiError, ModelLoadError, StoreError
from lanai.store.blobs import Blobs
from lanai.store.external import ROLE_PREFIX, external_locations, linked_model
from lanai.store.labels import check_label_count, parse_labels
from lanai.store.manifest import FileRef, Manifest
from lanai.types import BatchingConfig, ImagePreprocess, TensorSpec

__all__ = ["Inspect", "ModelSpec", "LabelsFile", "read_sources", "build_manifest"]

_RESERVED_ROLES = ("model", "labels")

# The caller's hook: load the model file at this path on its backend, return (inputs, outputs).
Inspect = Callable[[Path], tuple[Sequence[TensorSpec], Sequence[TensorSpec]]]


@dataclass(frozen=True)
class ModelSpec:
    """What ``Store.add`` was asked to import."""

    path: Path
    name: str
    task: str
    backend: str
    labels: Path | None
    preprocess: ImagePreprocess | None
    batching: BatchingConfig
    backend_options: dict[str, Any]
    provenance: dict[str, Any]
    attachments: dict[str, Path] = field(default_factory=dict)
    """More files to keep with the version, by role."""


@dataclass(frozen=True)
class LabelsFile:
    """A labels file read before the import: its exact bytes (stored as the blob) and its labels."""

    data: bytes
    labels: list[str]


def read_sources(spec: ModelSpec) -> LabelsFile | None:
    """Check the files to import exist and parse the labels, before anything touches the store."""
    if not spec.task:
        raise StoreError("a model needs a task", hint="pass task='classify' (or another task name)")
    _require_file(spec.path, "model file")
    for role, path in spec.attachments.items():
        if role in _RESERVED_ROLES:
            raise StoreError(f"attachment role {role!r} is reserved", hint="name it after what it holds, e.g. report")
        _require_file(path, f"{role} file")
    if spec.labels is None:
        return None
    _require_file(spec.labels, "labels file")
    try:
        data = spec.labels.read_bytes()
    except OSError as err:
        raise StoreError(
            f"cannot read labels file {spec.labels}: {err.strerror or err}",
            hint="check the file's permissions",
        ) from err
    return LabelsFile(data, parse_labels(data, source=str(spec.labels)))


def build_manifest(spec: ModelSpec, labels: LabelsFile | None, blobs: Blobs, inspect: Inspect) -> Manifest:
    """Copy the files into ``blobs``, inspect the model copy, return a manifest with version 0.

    The caller publishes it under a real version number. If anything here fails, blobs already
    written stay unreferenced until gc, and nothing else has changed.
    """
    model = FileRef(*blobs.put(spec.path), spec.path.name)
    external = _external_files(spec, blobs)
    loadable = blobs.path(model.sha256)
    if external:  # the model reads its weights from files beside it: link them under their names
        data = {ref.filename: blobs.path(ref.sha256) for ref in external.values()}
        loadable = linked_model(linked_root(blobs), loadable, model.filename, data)
    inputs, outputs = _inspect(inspect, loadable, spec)
    files = {"model": model, **external}
    if labels is not None and spec.labels is not None:
        check_label_count(labels.labels, outputs, source=str(spec.labels))
        files["labels"] = FileRef(*blobs.put_bytes(labels.data), spec.labels.name)
    for role, path in spec.attachments.items():
        files[role] = FileRef(*blobs.put(path), path.name)
    return Manifest(
        name=spec.name,
        version=0,
        task=spec.task,
        backend=spec.backend,
        files=files,
        inputs=inputs,
        outputs=outputs,
        preprocess=spec.preprocess,
        batching=spec.batching,
        backend_options=spec.backend_options,
        created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        provenance=spec.provenance,
    )


def linked_root(blobs: Blobs) -> Path:
    """Where models with external data are linked beside their data files (``<store>/linked``)."""
    return blobs.directory.parents[1] / "linked"


def _external_files(spec: ModelSpec, blobs: Blobs) -> dict[str, FileRef]:
    """An ONNX model's external data files (``model.onnx_data``), stored as blobs of their own."""
    if spec.backend != "onnx":
        return {}
    folder = spec.path.parent.resolve()
    found = {}
    for location in external_locations(spec.path):
        source = spec.path.parent / location
        _require_file(source, "external data file")
        if not source.resolve().is_relative_to(folder):
            raise StoreError(
                f"the model's external data {location!r} leads outside its folder ({source.resolve()})",
                hint="copy the data file beside the model instead of linking to it",
            )
        found[ROLE_PREFIX + location] = FileRef(*blobs.put(source), location)
    return found


def _require_file(path: Path, what: str) -> None:
    if not path.exists():
        raise StoreError(f"{what} {path} does not exist", hint="check the path and try again")
    if not path.is_file():
        raise StoreError(f"{what} {path} is not a regular file", hint="give the path of a file")


def _inspect(inspect: Inspect, blob: Path, spec: ModelSpec) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    try:
        inputs, outputs = inspect(blob)
    except LanaiError:
        raise
    except Exception as err:
        raise ModelLoadError(
            f"{spec.path} does not load on backend {spec.backend!r}: {err}",
            hint=f"check that it is a valid {spec.backend} model file",
        ) from err
    return tuple(inputs), tuple(outputs)
