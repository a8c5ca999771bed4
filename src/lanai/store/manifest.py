"""The manifest of one model version: what its files are and how to serve it, as TOML."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from lanai.errors import StoreError
from lanai.store.blobs import check_digest
from lanai.store.names import validate_name
from lanai.types import BatchingConfig, ImagePreprocess, TensorSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["SCHEMA", "FileRef", "Manifest", "read_manifest"]

SCHEMA = 1
_VALUE_HINT = "backend options and provenance may hold strings, numbers, booleans, lists and tables"


@dataclass(frozen=True)
class FileRef:
    """One file of a model version: its blob digest, its size in bytes, its original file name."""

    sha256: str
    size: int
    filename: str

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "size": self.size, "filename": self.filename}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileRef:
        return cls(check_digest(data["sha256"]), int(data["size"]), str(data["filename"]))


@dataclass(frozen=True)
class Manifest:
    """One published version of a model. ``files`` maps a role (``"model"``, ``"labels"``) to a blob."""

    name: str
    version: int
    task: str
    backend: str
    files: dict[str, FileRef]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    preprocess: ImagePreprocess | None = None
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    backend_options: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_toml(self) -> str:
        """The manifest as TOML text; StoreError if an option or provenance value has no TOML form."""
        data: dict[str, Any] = {
            "schema": SCHEMA,
            "name": self.name,
            "version": self.version,
            "task": self.task,
            "backend": self.backend,
            "created": self.created,
            "files": {role: ref.to_dict() for role, ref in self.files.items()},
            "inputs": [spec.to_dict() for spec in self.inputs],
            "outputs": [spec.to_dict() for spec in self.outputs],
            "batching": self.batching.to_dict(),
            "backend_options": dict(self.backend_options),
            "provenance": dict(self.provenance),
        }
        if self.preprocess is not None:
            data["preprocess"] = self.preprocess.to_dict()
        try:
            return tomli_w.dumps(data)
        except TypeError as err:
            raise StoreError(
                f"the manifest of {self.name!r} cannot be written as TOML: {err}", hint=_VALUE_HINT
            ) from err

    @classmethod
    def from_toml(cls, text: str, *, source: str = "<manifest>") -> Manifest:
        """Parse a manifest; StoreError naming ``source`` if it is not a valid manifest."""
        try:
            return _from_dict(tomllib.loads(text))
        except StoreError as err:
            raise StoreError(f"manifest {source} is not valid: {err.message}", hint=err.hint) from err
        except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError, AttributeError) as err:
            detail = f"missing key {err}" if isinstance(err, KeyError) else str(err)
            raise StoreError(
                f"manifest {source} is not valid: {detail}",
                hint="manifests are written by lanai; remove this version and add the model again",
            ) from err


def read_manifest(path: Path) -> Manifest:
    """Read and parse the manifest file at ``path``; StoreError naming the file if it is not valid."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise StoreError(f"manifest {path} is not UTF-8 text", hint="remove this version") from err
    return Manifest.from_toml(text, source=str(path))


def _from_dict(data: dict[str, Any]) -> Manifest:
    schema = int(data.get("schema", SCHEMA))
    if schema > SCHEMA:
        raise StoreError(
            f"it uses manifest schema {schema}; this lanai reads schema {SCHEMA}",
            hint="upgrade lanai to read this store",
        )
    version = int(data["version"])
    if version < 1:
        raise ValueError(f"version must be 1 or more, not {version}")
    preprocess = data.get("preprocess")
    return Manifest(
        name=validate_name(data["name"]),
        version=version,
        task=str(data["task"]),
        backend=str(data["backend"]),
        files={str(role): FileRef.from_dict(ref) for role, ref in data["files"].items()},
        inputs=tuple(TensorSpec.from_dict(spec) for spec in data["inputs"]),
        outputs=tuple(TensorSpec.from_dict(spec) for spec in data["outputs"]),
        preprocess=None if preprocess is None else ImagePreprocess.from_dict(preprocess),
        batching=BatchingConfig.from_dict(data.get("batching", {})),
        backend_options=dict(data.get("backend_options", {})),
        created=str(data.get("created", "")),
        provenance=dict(data.get("provenance", {})),
    )
