"""The embedding cache: a task's answer rows for content it has seen, so that asking again costs nothing.

An entry is keyed by the model, its version, the task, its parameters and the SHA-256 of the content,
and holds the rows the batch gave that request (an embedding, a text's token count). Memory is bounded
by bytes (least recently used entries go first). With a folder, entries are also written to disk
(``<store>/cache/embeddings/<model>/<version>/``) and read back after a restart; a model's entries of
other versions, in memory and on disk, are dropped when a version of it loads, so an answer of an old
version is never given for a new one.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["EmbeddingCache", "CacheKey", "content_digest"]

log = logging.getLogger(__name__)

Rows = dict[str, np.ndarray]


@dataclass(frozen=True)
class CacheKey:
    model: str
    version: str
    task: str
    params: Hashable
    digest: str
    """SHA-256 of the content, hex."""

    @property
    def file_name(self) -> str:
        """The entry's file name on disk: the content's digest with the task and its parameters."""
        extra = hashlib.sha256(f"{self.task}\0{self.params!r}".encode()).hexdigest()[:16]
        return f"{self.digest}-{extra}.npz"


def content_digest(data: str | bytes) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


class EmbeddingCache:
    """Rows by :class:`CacheKey`, at most ``max_bytes`` of arrays in memory, optionally on disk in ``folder``.

    ``on_hit``/``on_miss`` are called with the model name (metrics); thread-safe.
    """

    def __init__(
        self,
        max_bytes: int,
        folder: Path | None = None,
        on_hit: Callable[[str], None] | None = None,
        on_miss: Callable[[str], None] | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.folder = folder
        self._entries: OrderedDict[CacheKey, tuple[Rows, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._on_hit = on_hit
        self._on_miss = on_miss

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey) -> Rows | None:
        """The rows for ``key`` in memory, or None (then :meth:`read` looks on disk)."""
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
        return None if found is None else found[0]

    def count(self, key: CacheKey, hit: bool) -> None:
        """Report a lookup's outcome (once per lookup, after memory and disk were asked)."""
        callback = self._on_hit if hit else self._on_miss
        if callback is not None:
            callback(key.model)

    def put(self, key: CacheKey, rows: Rows) -> None:
        """Keep a copy of ``rows`` for ``key`` in memory (:meth:`write` puts it on disk)."""
        self._remember(key, {name: np.array(value, copy=True) for name, value in rows.items()})

    def read(self, key: CacheKey) -> Rows | None:
        """The rows for ``key`` from disk (then kept in memory too), or None. Blocking: call it in a thread."""
        rows = self._read(key)
        if rows is not None:
            self._remember(key, rows)
        return rows

    def write(self, key: CacheKey, rows: Rows) -> None:
        """Write ``rows`` for ``key`` to disk, if the cache has a folder. Blocking: call it in a thread."""
        if self.folder is not None:
            self._write(key, rows)

    def drop_other_versions(self, model: str, version: str | None) -> None:
        """Forget ``model``'s entries of every version but ``version`` (None: all), here and on disk."""
        with self._lock:
            for key in [k for k in self._entries if k.model == model and k.version != version]:
                self._bytes -= self._entries.pop(key)[1]
        if self.folder is None:
            return
        folder = self.folder / model
        if folder.is_dir():
            for entry in folder.iterdir():
                if entry.name != version:
                    shutil.rmtree(entry, ignore_errors=True)

    def _remember(self, key: CacheKey, rows: Rows) -> None:
        size = sum(value.nbytes for value in rows.values()) + 200  # the key and the dict, roughly
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[key] = (rows, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, freed) = self._entries.popitem(last=False)
                self._bytes -= freed

    def _path(self, key: CacheKey) -> Path:
        assert self.folder is not None
        return self.folder / key.model / key.version / key.digest[:2] / key.file_name

    def _read(self, key: CacheKey) -> Rows | None:
        if self.folder is None:
            return None
        try:
            data = self._path(key).read_bytes()
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:  # a damaged entry is a miss; it is written again
            log.warning("embedding cache entry %s is unreadable: %s", self._path(key), exc)
            return None

    def _write(self, key: CacheKey, rows: Rows) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temp = tempfile.mkstemp(dir=path.parent, suffix=".part")
        except OSError as exc:
            log.warning("could not write embedding cache entry %s: %s", path, exc)
            return
        try:
            with os.fdopen(handle, "wb") as out:
                np.savez(out, **rows)  # type: ignore[arg-type]
            os.replace(temp, path)
        except OSError as exc:  # a full disk costs the cache, not the request
            log.warning("could not write embedding cache entry %s: %s", path, exc)
            Path(temp).unlink(missing_ok=True)
