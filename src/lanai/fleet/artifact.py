"""A lanai model version as an OCI artifact: what ``lanai push`` publishes and ``lanai pull`` takes in.

The artifact is an OCI image manifest (``artifactType`` :data:`ARTIFACT_TYPE`) whose layers are the
version's files, laid out as a folder (each layer's ``org.opencontainers.image.title`` is its path in it,
so ``oras pull`` gives the same folder):

    lanai.toml                the version's manifest: task, backend, preprocessing, batching, options
    model/<file>              the model, with its external data files beside it
    <role>/<file>             labels, tokenizer, few-shot head, stages, reports…
    model.sig                 (layer only, outside the folder) the folder's signature, if it was signed

The config blob and the manifest's annotations say what the model is (task, backend, input signature,
the lanai version it needs, the accelerator it was built for) so a registry's UI, ``oras manifest
fetch`` and a box deciding whether to pull can read them without downloading a byte of the model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from lanai import __version__
from lanai.errors import LanaiError, RegistryError, StoreError
from lanai.fleet.reference import Reference
from lanai.fleet.registry import Fetched, RegistryClient, sha256_digest
from lanai.store import Store
from lanai.store.blobs import file_sha256
from lanai.store.external import ROLE_PREFIX
from lanai.store.manifest import FileRef, Manifest

__all__ = ["ARTIFACT_TYPE", "CONFIG_TYPE", "Published", "Pulled", "push", "pull", "MIN_LANAI_VERSION"]

log = logging.getLogger(__name__)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ARTIFACT_TYPE = "application/vnd.lanai.model.v1"
CONFIG_TYPE = "application/vnd.lanai.model.config.v1+json"
MANIFEST_LAYER = "application/vnd.lanai.model.manifest.v1+toml"
FILE_LAYER = "application/vnd.lanai.model.file.v1"
SIGNATURE_LAYER = "application/vnd.dev.sigstore.bundle.v0.3+json"
TITLE = "org.opencontainers.image.title"
MANIFEST_FILE = "lanai.toml"
SIGNATURE_FILE = "model.sig"
MIN_LANAI_VERSION = "0.1.0"
"""The oldest lanai that reads the artifacts this one writes (the manifest schema and layout above)."""

_SAFE_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class Rollout:
    """Which boxes take a version when: ``rings`` in order (a box's ``ring`` setting names its own), each
    ring ``soak_s`` seconds after the one before it, counted from ``published`` (UTC, ISO 8601). Read by
    the boxes from the artifact's annotations; there is no server of lanai's own in between."""

    rings: tuple[str, ...] = ()
    soak_s: float = 0.0
    published: str = ""

    def annotations(self) -> dict[str, str]:
        if not self.rings:
            return {}
        return {"org.lanai.rollout.rings": ",".join(self.rings), "org.lanai.rollout.soak-seconds": str(self.soak_s),
                "org.lanai.rollout.published": self.published}  # fmt: skip

    @classmethod
    def of(cls, annotations: dict[str, Any]) -> Rollout:
        rings = tuple(r.strip() for r in str(annotations.get("org.lanai.rollout.rings", "")).split(",") if r.strip())
        try:
            soak = float(annotations.get("org.lanai.rollout.soak-seconds", 0))
        except ValueError:
            soak = 0.0
        return cls(rings, soak, str(annotations.get("org.lanai.rollout.published", "")))

    def opens_at(self, ring: str) -> float:
        """When (epoch seconds) a box of ``ring`` may take this version (a ring that is not listed goes
        with the last one)."""
        if not self.rings:
            return 0.0
        from datetime import datetime

        try:
            start = datetime.fromisoformat(self.published.replace("Z", "+00:00")).timestamp()
        except ValueError:
            start = 0.0
        position = self.rings.index(ring) if ring in self.rings else len(self.rings) - 1
        return start + position * self.soak_s


@dataclass(frozen=True)
class Published:
    reference: Reference
    digest: str
    sent: int
    """Blobs uploaded (the others were in the registry already)."""
    signed: bool


@dataclass(frozen=True)
class Pulled:
    name: str
    version: int
    digest: str
    signed_by: str | None
    """The trusted key's file name that verified the signature, or None when none was required."""


# -- push -------------------------------------------------------------------------------------------


def push(
    store: Store,
    name: str,
    version: int | None,
    ref: Reference,
    client: RegistryClient,
    *,
    sign_key: Path | None = None,
    sign_password: str | None = None,
    golden: bytes | None = None,
    rollout: Rollout | None = None,
) -> Published:
    """Publish ``name`` at ``version`` (None: the active one) to ``ref``'s repository under its tag, with
    ``golden`` inputs (``fleet.golden``) and the ``rollout`` the boxes that follow the tag keep to."""
    manifest = store.manifest(name, version)
    with tempfile.TemporaryDirectory(prefix="lanai-push-") as tmp:
        folder = Path(tmp) / "model"
        files = _export(store, manifest, folder, golden)
        signature = Path(tmp) / SIGNATURE_FILE
        if sign_key is not None:
            from lanai.fleet.signing import sign_folder

            sign_folder(folder, sign_key, signature, sign_password)
        layers = []
        sent = 0
        for relative, (path, media_type) in sorted(files.items()):
            digest, size = _file_digest(path)
            sent += client.push_blob(ref.repository, digest, size, path)
            layers.append(_descriptor(media_type, digest, size, {TITLE: relative}))
        if sign_key is not None:
            digest, size = _file_digest(signature)
            sent += client.push_blob(ref.repository, digest, size, signature)
            layers.append(_descriptor(SIGNATURE_LAYER, digest, size, {TITLE: SIGNATURE_FILE}))
        config = json.dumps(_config(manifest), sort_keys=True).encode()
        sent += client.push_blob(ref.repository, sha256_digest(config), len(config), config)
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": ARTIFACT_TYPE,
            "config": _descriptor(CONFIG_TYPE, sha256_digest(config), len(config)),
            "layers": layers,
            "annotations": {**_annotations(manifest), **(rollout.annotations() if rollout else {})},
        }
        data = json.dumps(document, indent=1).encode()
        digest = client.put_manifest(ref.repository, ref.tag or "latest", data, OCI_MANIFEST)
    return Published(ref.with_digest(digest), digest, sent, sign_key is not None)


def _export(store: Store, manifest: Manifest, folder: Path, golden: bytes | None) -> dict[str, tuple[Path, str]]:
    """The version's files laid out in ``folder`` (hard links to the store's blobs where the filesystem
    allows, else copies), with the golden inputs as one more: {path in the folder: (file, media type)}."""
    files: dict[str, tuple[Path, str]] = {}
    (folder / "model").mkdir(parents=True)
    if golden is not None:
        from lanai.fleet import golden as golden_files

        target = folder / _relative_path(golden_files.ROLE, golden_files.FILENAME)
        target.parent.mkdir(parents=True)
        target.write_bytes(golden)
        files[_relative_path(golden_files.ROLE, golden_files.FILENAME)] = (target, FILE_LAYER)
        ref = FileRef(hashlib.sha256(golden).hexdigest(), len(golden), golden_files.FILENAME)
        manifest = dataclasses.replace(manifest, files={**manifest.files, golden_files.ROLE: ref})
    toml = folder / MANIFEST_FILE
    toml.write_text(manifest.to_toml(), encoding="utf-8")
    files[MANIFEST_FILE] = (toml, MANIFEST_LAYER)
    for role, ref in manifest.files.items():
        if role == "golden" and golden is not None:
            continue
        relative = _relative_path(role, ref.filename)
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        source = store.blob_path(ref.sha256)
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
        files[relative] = (target, FILE_LAYER)
    return files


def _relative_path(role: str, filename: str) -> str:
    """Where a role's file sits in the folder: the model and its external data (under their own names,
    as the model refers to them) in ``model/``, every other file in a folder named after its role."""
    parts: tuple[str, ...]
    if role == "model":
        parts = ("model", filename)
    elif role.startswith(ROLE_PREFIX):
        parts = ("model", *PurePosixPath(role[len(ROLE_PREFIX) :]).parts)
    else:
        parts = (role, filename)
    if not all(_SAFE_PART.fullmatch(part) for part in parts):
        raise StoreError(f"the file {filename!r} ({role}) has a name that cannot travel as an artifact path.")
    return "/".join(parts)


def _config(manifest: Manifest) -> dict[str, Any]:
    return {
        "name": manifest.name,
        "version": manifest.version,
        "task": manifest.task,
        "backend": manifest.backend,
        "inputs": [spec.to_dict() for spec in manifest.inputs],
        "outputs": [spec.to_dict() for spec in manifest.outputs],
        "accelerator": _accelerator(manifest),
        "min_lanai_version": MIN_LANAI_VERSION,
        "created": manifest.created,
    }


def _accelerator(manifest: Manifest) -> str:
    """What the model was built for: a provider or delegate named in its options, else the CPU."""
    options = manifest.backend_options
    for key in ("accelerator", "providers", "delegates"):
        value = options.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, list) and value:
            return str(value[0])
    return "cpu"


def _annotations(manifest: Manifest) -> dict[str, str]:
    signature = ", ".join(f"{s.name} {s.datatype} {list(s.shape)}" for s in manifest.inputs)
    return {
        "org.opencontainers.image.title": manifest.name,
        "org.opencontainers.image.created": manifest.created,
        "org.opencontainers.image.version": str(manifest.version),
        "org.lanai.model.task": manifest.task,
        "org.lanai.model.backend": manifest.backend,
        "org.lanai.model.inputs": signature,
        "org.lanai.model.accelerator": _accelerator(manifest),
        "org.lanai.min-version": MIN_LANAI_VERSION,
    }


def _descriptor(media_type: str, digest: str, size: int, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": size}
    if annotations:
        out["annotations"] = annotations
    return out


def _file_digest(path: Path) -> tuple[str, int]:
    digest, size = file_sha256(path)
    return "sha256:" + digest, size


# -- pull -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layer:
    path: str
    media_type: str
    digest: str
    size: int


def pull(
    store: Store,
    ref: Reference,
    client: RegistryClient,
    *,
    name: str | None = None,
    trusted_keys: Sequence[Path] = (),
) -> Pulled:
    """Bring the artifact at ``ref`` into the store as a new, inactive version of ``name`` (default: the
    name it was published under). Every layer is checked against its digest while it streams, the
    signature against ``trusted_keys`` (required when any are given), and the model is loaded once
    before the version is published; if anything fails, the store is as it was."""
    fetched = client.get_manifest(ref, (OCI_MANIFEST,))
    layers = _layers(fetched, ref)
    store.root.mkdir(parents=True, exist_ok=True)
    with _scratch(store) as scratch:
        folder = scratch / "model"
        signature = scratch / SIGNATURE_FILE
        for layer in layers:
            target = signature if layer.media_type == SIGNATURE_LAYER else folder / layer.path
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("xb") as out:
                client.fetch_blob(ref.repository, layer.digest, layer.size, out)
        signed_by = None
        if trusted_keys:
            from lanai.fleet.signing import verify_folder

            signed_by = verify_folder(folder, signature, trusted_keys).name
        elif signature.exists():
            log.warning("%s is signed, but this box trusts no signing keys: the signature was not checked", ref)
        manifest = _read_manifest(folder, fetched.digest)
        imported = _import(store, manifest, folder, name or manifest.name, ref, fetched.digest, signed_by)
    return Pulled(imported.name, imported.version, fetched.digest, signed_by)


def _layers(fetched: Fetched, ref: Reference) -> list[_Layer]:
    """The manifest's layers, checked: a lanai artifact, for a lanai this one, with safe paths."""
    document = fetched.json()
    kind = document.get("artifactType") or (document.get("config") or {}).get("mediaType")
    if kind not in (ARTIFACT_TYPE, CONFIG_TYPE):
        raise RegistryError(
            f"{ref} is not a lanai model (its type is {kind!r}).",
            hint="publish models with lanai push; container images and other artifacts cannot be pulled as models.",
        )
    needed = (document.get("annotations") or {}).get("org.lanai.min-version", MIN_LANAI_VERSION)
    if _version_tuple(str(needed)) > _version_tuple(__version__):
        raise RegistryError(
            f"{ref} needs lanai {needed} or later; this box runs {__version__}.", hint="upgrade lanai on this box."
        )
    layers, seen = [], set()
    for item in document.get("layers") or []:
        layer = _layer(item, ref)
        if layer.path in seen:
            raise RegistryError(f"{ref} has two layers for {layer.path!r}.")
        seen.add(layer.path)
        layers.append(layer)
    if MANIFEST_FILE not in seen:
        raise RegistryError(f"{ref} has no {MANIFEST_FILE} layer; it is not a whole lanai artifact.")
    return layers


def _layer(item: Any, ref: Reference) -> _Layer:
    if not isinstance(item, dict):
        raise RegistryError(f"{ref} has a layer that is not an object.")
    digest, size, media_type = item.get("digest"), item.get("size"), item.get("mediaType", "")
    path = (item.get("annotations") or {}).get(TITLE)
    if not isinstance(digest, str) or not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise RegistryError(f"{ref} has a layer with digest {digest!r}; lanai reads sha256 digests only.")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise RegistryError(f"{ref}'s layer {digest} declares size {size!r}.")
    parts = PurePosixPath(path).parts if isinstance(path, str) else ()
    if not parts or not all(_SAFE_PART.fullmatch(p) for p in parts):
        raise RegistryError(
            f"{ref}'s layer {digest} has the path {path!r}, which is not a plain relative path.",
            hint="a lanai artifact names its files model/…, lanai.toml and ROLE/FILE; nothing is written outside.",
        )
    return _Layer("/".join(parts), str(media_type), digest, size)


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


@contextlib.contextmanager
def _scratch(store: Store) -> Iterator[Path]:
    """A folder for the download beside the store (so its files can become blobs by rename), removed
    afterwards whatever happened."""
    staging = store.root / "staging"
    staging.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="pull-", dir=staging))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _read_manifest(folder: Path, digest: str) -> Manifest:
    try:
        return Manifest.from_toml(
            (folder / MANIFEST_FILE).read_text(encoding="utf-8"), source=f"{digest} {MANIFEST_FILE}"
        )
    except (LanaiError, UnicodeDecodeError, KeyError, ValueError, TypeError) as exc:
        raise RegistryError(f"the artifact's {MANIFEST_FILE} cannot be read: {exc}") from None


def _import(
    store: Store, manifest: Manifest, folder: Path, name: str, ref: Reference, digest: str, signed_by: str | None
) -> Manifest:
    """The downloaded folder as a new inactive version, through the store's own import (which loads the
    model on its backend before anything is published)."""
    from lanai.bundled import inspector
    from lanai.tasks import get_task
    from lanai.tasks.staged import StagedTask

    paths: dict[str, Path] = {}
    for role, ref_ in manifest.files.items():
        path = folder / _relative_path(role, ref_.filename)
        if not path.is_file():
            raise RegistryError(
                f"the artifact's {MANIFEST_FILE} lists {role} {ref_.filename!r}, but no layer holds it."
            )
        found, _ = _file_digest(path)
        if found != "sha256:" + ref_.sha256:
            raise RegistryError(f"the artifact's {role} file is not the one its {MANIFEST_FILE} describes.")
        paths[role] = path
    if "model" not in paths:
        raise RegistryError(f"the artifact's {MANIFEST_FILE} lists no model file.")
    attachments = {role: path for role, path in paths.items() if role not in ("model", "labels")}
    attachments = {role: path for role, path in attachments.items() if not role.startswith(ROLE_PREFIX)}
    task = get_task(manifest.task)
    if isinstance(task, StagedTask):
        from lanai.staged_cli import staged_inspector

        inspect = staged_inspector(task, manifest.backend, attachments)
    else:
        inspect = inspector(manifest.backend, manifest.task)
    provenance = {**manifest.provenance, "pulled_from": str(ref), "artifact_digest": digest}
    if signed_by is not None:
        provenance["signed_by"] = signed_by
    return store.add(
        paths["model"],
        name=name,
        task=manifest.task,
        backend=manifest.backend,
        labels=paths.get("labels"),
        preprocess=manifest.preprocess,
        batching=manifest.batching,
        backend_options=dict(manifest.backend_options),
        provenance=provenance,
        attachments=attachments,
        inspect=inspect,
        activate=False,
    )
