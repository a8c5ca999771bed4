"""The prompt cache beyond the slots: caches of long prompt beginnings (a system prompt, a document) kept in
host RAM after their sequence is given to another request, and on disk across restarts and reloads.

A language model's engine has a few sequences (slots), and each keeps the cache of its last prompt and
answer; a request that shares a beginning with one of them reads only the rest. With more distinct long
prompts than slots, or after a restart, those caches are gone and the prompt is read again — seconds to
minutes on a Pi. Here, a sequence's cache is saved (llama.cpp's own state format) before it is
overwritten, when it holds at least ``min_tokens`` tokens; a new request whose prompt begins like a saved
one better than like any slot gets that state put back into its sequence first. When the model is
unloaded (or the server stops), what is cached is written to ``folder``; the next load finds it there.

Entries are bounded in RAM (``ram_bytes``, least recently used leaves first, to disk when there is a
folder) and on disk (``disk_bytes``). A file that another model or llama.cpp build wrote is refused by
llama.cpp when it is loaded, and deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["PromptCache", "Saved"]

log = logging.getLogger(__name__)

_SUFFIX = ".kv.npz"


@dataclass
class Saved:
    tokens: tuple[int, ...]
    size: int
    state: bytes | None = None
    """In RAM; None while it is only on disk."""
    path: Path | None = None
    used: float = field(default_factory=time.monotonic)


class PromptCache:
    def __init__(
        self, *, ram_bytes: int, folder: Path | None = None, disk_bytes: int = 0, min_tokens: int = 128,
        identity: str = "",
    ) -> None:  # fmt: skip
        self.ram_bytes, self.disk_bytes, self.min_tokens = ram_bytes, disk_bytes, min_tokens
        self.folder = folder
        self.identity = identity
        """What the states belong to (the model file's digest): files of another identity are ignored."""
        self.entries: list[Saved] = []
        self.hits = 0
        if folder is not None:
            self._read_index()

    # -- lookups (the engine's thread) ----------------------------------------------------------------

    def best(self, prompt: Sequence[int]) -> tuple[Saved, int] | None:
        """The saved entry sharing the longest beginning with ``prompt``, and how many tokens it shares."""
        found, longest = None, 0
        for entry in self.entries:
            same = _common(entry.tokens, prompt)
            if same > longest:
                found, longest = entry, same
        return (found, longest) if found is not None else None

    def covers(self, tokens: Sequence[int]) -> bool:
        """Whether an entry already holds all of ``tokens`` (no need to save them again)."""
        return any(len(e.tokens) >= len(tokens) and _common(e.tokens, tokens) == len(tokens) for e in self.entries)

    def state_of(self, entry: Saved) -> bytes | None:
        """The entry's state, read from disk if it is only there (None if the file is gone)."""
        entry.used = time.monotonic()
        if entry.state is not None:
            return entry.state
        try:
            with np.load(entry.path) as data:  # type: ignore[arg-type]
                return bytes(data["state"].tobytes())
        except (OSError, ValueError, KeyError):
            self.drop(entry)
            return None

    def keep(self, tokens: Sequence[int], state: bytes) -> None:
        """Save a sequence's cache. Entries it extends or repeats are replaced by it."""
        kept = tuple(tokens)
        if len(kept) < self.min_tokens or not state:
            return
        for entry in list(self.entries):
            if _common(entry.tokens, kept) == len(entry.tokens):  # a beginning of the new one: superseded
                self.drop(entry)
        self.entries.append(Saved(kept, len(state), state))
        self._fit_ram()

    def drop(self, entry: Saved) -> None:
        if entry in self.entries:
            self.entries.remove(entry)
        if entry.path is not None:
            entry.path.unlink(missing_ok=True)

    # -- disk -----------------------------------------------------------------------------------------

    def persist(self) -> None:
        """Write every entry held only in RAM to the folder (on unload or shutdown)."""
        for entry in list(self.entries):
            if entry.state is not None and entry.path is None:
                self._write(entry)
        self._fit_disk()

    def _fit_ram(self) -> None:
        in_ram = sorted((e for e in self.entries if e.state is not None), key=lambda e: e.used)
        total = sum(e.size for e in in_ram)
        for entry in in_ram:
            if total <= self.ram_bytes:
                break
            total -= entry.size
            if self.folder is not None and entry.path is None:
                self._write(entry)
            if entry.path is not None:
                entry.state = None  # still on disk
            else:
                self.entries.remove(entry)
        self._fit_disk()

    def _fit_disk(self) -> None:
        if self.folder is None:
            return
        on_disk = sorted((e for e in self.entries if e.path is not None), key=lambda e: e.used)
        total = sum(e.size for e in on_disk)
        for entry in on_disk:
            if total <= self.disk_bytes:
                break
            total -= entry.size
            entry.path.unlink(missing_ok=True)  # type: ignore[union-attr]
            entry.path = None
            if entry.state is None:
                self.entries.remove(entry)

    def _write(self, entry: Saved) -> None:
        assert self.folder is not None and entry.state is not None
        name = hashlib.sha256(np.asarray(entry.tokens, dtype=np.int32).tobytes()).hexdigest()[:24] + _SUFFIX
        path = self.folder / name
        partial = self.folder / f".{name}.{os.getpid()}.part"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with partial.open("wb") as out:
                np.savez(out, tokens=np.asarray(entry.tokens, dtype=np.int32),
                         state=np.frombuffer(entry.state, dtype=np.uint8), meta=np.asarray(json.dumps(
                             {"identity": self.identity, "saved": time.time()})))  # fmt: skip
            os.replace(partial, path)  # a reader never sees half a file
            entry.path = path
        except OSError as exc:  # a full or read-only disk: the cache just stays in RAM (or is lost)
            partial.unlink(missing_ok=True)
            log.warning("could not save a prompt cache to %s: %s", path, exc)

    def _read_index(self) -> None:
        assert self.folder is not None
        for path in sorted(self.folder.glob(f"*{_SUFFIX}")) if self.folder.is_dir() else []:
            try:
                with np.load(path) as data:
                    meta = json.loads(str(data["meta"]))
                    tokens = tuple(int(t) for t in data["tokens"])
                    size = int(data["state"].shape[0])
            except (OSError, ValueError, KeyError):
                path.unlink(missing_ok=True)
                continue
            if meta.get("identity") != self.identity:
                path.unlink(missing_ok=True)  # another model's (an older version of this one's)
                continue
            self.entries.append(Saved(tokens, size, None, path, used=0.0))  # older than anything in RAM


def _common(a: Sequence[int], b: Sequence[int]) -> int:
    """How many tokens ``a`` and ``b`` share from the start."""
    size = min(len(a), len(b))
    if size == 0:
        return 0
    left = np.asarray(a[:size], dtype=np.int64)
    right = np.asarray(b[:size], dtype=np.int64)
    differ = np.flatnonzero(left != right)
    return int(differ[0]) if differ.size else size
