"""Advisory file locks between processes sharing one store (``flock``; none on Windows)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCKS_WORK", "FileLock"]

LOCKS_WORK = fcntl is not None


class FileLock:
    """A shared/exclusive lock on one file, held for the duration of a ``with`` block.

    ``flock`` locks belong to an open file description, so they also exclude threads of one process
    that hold separate ``FileLock`` blocks, and the kernel drops them when a process dies (kill -9
    included): a crash never leaves a stale lock. Where ``fcntl`` is missing, nothing is locked.
    Not re-entrant: taking the exclusive lock while holding the shared one in the same thread deadlocks.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def shared(self) -> Iterator[None]:
        """Hold the lock together with other shared holders."""
        with self._hold(exclusive=False):
            yield

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the lock alone."""
        with self._hold(exclusive=True):
            yield

    @contextmanager
    def _hold(self, *, exclusive: bool) -> Iterator[None]:
        if fcntl is None:
            yield
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock
