"""Small filesystem steps the store is built from: durable temp files, atomic replace, dir fsync."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

__all__ = ["fsync_dir", "write_temp", "replace_atomic", "unlink_quietly", "age_seconds"]


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a rename, a link, an unlink) durable.

    A no-op on Windows, where a directory cannot be opened for fsync.
    """
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_temp(staging: Path, data: bytes) -> Path:
    """Write ``data`` to a new temp file in ``staging``, fsync it, and return its path."""
    fd, name = tempfile.mkstemp(dir=staging, prefix="tmp-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        unlink_quietly(Path(name))
        raise
    return Path(name)


def replace_atomic(target: Path, data: bytes, staging: Path) -> None:
    """Replace ``target`` with ``data`` so that readers see either the old or the new file, whole.

    Temp file in ``staging`` (same filesystem) + fsync + ``os.replace`` + fsync of the directory.
    """
    tmp = write_temp(staging, data)
    try:
        os.replace(tmp, target)
    except BaseException:
        unlink_quietly(tmp)
        raise
    fsync_dir(target.parent)


def unlink_quietly(path: Path) -> None:
    """Delete a file if it is there, read-only or not (Windows refuses to delete read-only files)."""
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except PermissionError:
        os.chmod(path, stat.S_IWRITE | stat.S_IREAD)
        path.unlink(missing_ok=True)


def age_seconds(path: Path, now: float) -> float:
    """Seconds since ``path`` was last modified (``inf`` if it vanished meanwhile)."""
    try:
        return now - path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")
