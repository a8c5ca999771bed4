"""Content-addressed blobs: immutable files named by the sha256 of their bytes."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO

from lanai.errors import StoreError
from lanai.store._fs import fsync_dir, unlink_quietly

__all__ = ["Blobs", "check_digest", "file_sha256"]

_DIGEST = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20


def check_digest(digest: object) -> str:
    """Return ``digest`` if it is 64 lowercase hex characters (a sha256), else raise StoreError."""
    if not isinstance(digest, str) or _DIGEST.fullmatch(digest) is None:
        raise StoreError(
            f"{digest!r} is not a sha256 digest",
            hint="a digest is 64 lowercase hexadecimal characters",
        )
    return digest


def file_sha256(path: Path) -> tuple[str, int]:
    """The sha256 (hex) and size of the file at ``path``, read in chunks."""
    hasher, size = hashlib.sha256(), 0
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            hasher.update(chunk)
            size += len(chunk)
    return hasher.hexdigest(), size


class Blobs:
    """The files of ``directory`` (``<root>/blobs/sha256``), each named by its sha256.

    A blob is written to ``staging`` while it is hashed, fsynced, made read-only, then renamed into
    place, so a blob that exists is always whole. ``staging`` must be on the same filesystem.
    """

    def __init__(self, directory: Path, staging: Path) -> None:
        self.directory = directory
        self.staging = staging

    def path(self, digest: str) -> Path:
        """Where the blob ``digest`` lives, whether or not it exists."""
        return self.directory / check_digest(digest)

    def exists(self, digest: str) -> bool:
        """Whether the blob ``digest`` is in the store."""
        return self.path(digest).is_file()

    def open(self, digest: str) -> BinaryIO:
        """Open the blob ``digest`` for reading; StoreError if it is missing."""
        try:
            return self.path(digest).open("rb")
        except FileNotFoundError:
            raise StoreError(
                f"blob {digest} is missing from {self.directory}",
                hint="the store is damaged; add the model again",
            ) from None

    def put(self, source: Path) -> tuple[str, int]:
        """Copy the file ``source`` into the store; return its ``(sha256, size)``.

        Idempotent: if a blob with the same content exists, the copy is dropped.
        """
        try:
            with source.open("rb") as stream:
                return self._put_stream(stream)
        except OSError as err:
            raise StoreError(
                f"could not copy {source} into the store: {err.strerror or err}",
                hint=f"check that the file is readable and that {self.directory} has free space",
            ) from err

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        """Store ``data`` as a blob; return its ``(sha256, size)``."""
        try:
            return self._put_stream(io.BytesIO(data))
        except OSError as err:
            raise StoreError(
                f"could not write a blob into the store: {err.strerror or err}",
                hint=f"check that {self.directory} is writable and has free space",
            ) from err

    def verify(self, digest: str) -> bool:
        """Whether the blob exists and its bytes still hash to ``digest``."""
        if not self.exists(digest):
            return False
        return file_sha256(self.path(digest))[0] == digest

    def digests(self) -> list[str]:
        """The digests of every blob in the store, sorted."""
        if not self.directory.is_dir():
            return []
        return sorted(p.name for p in self.directory.iterdir() if _DIGEST.fullmatch(p.name))

    def delete(self, digest: str) -> None:
        """Delete the blob ``digest`` if it exists. Callers make sure nothing references it."""
        unlink_quietly(self.path(digest))

    def _put_stream(self, stream: BinaryIO) -> tuple[str, int]:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp, digest, size = self._copy_to_staging(stream)
        target = self.directory / digest
        try:
            if target.exists():
                _touch(target)
            else:
                os.chmod(tmp, 0o444)
                os.replace(tmp, target)
                fsync_dir(self.directory)
        finally:
            unlink_quietly(tmp)  # gone already after a successful replace
        return digest, size

    def _copy_to_staging(self, stream: BinaryIO) -> tuple[Path, str, int]:
        hasher = hashlib.sha256()
        size = 0
        fd, name = tempfile.mkstemp(dir=self.staging, prefix="blob-")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(_CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            unlink_quietly(Path(name))
            raise
        return Path(name), hasher.hexdigest(), size


def _touch(path: Path) -> None:
    """Refresh the mtime of a blob that is being referenced again (gc's age rule keeps it)."""
    with contextlib.suppress(OSError):  # owned by another user: the age rule is only a fallback
        os.utime(path)
