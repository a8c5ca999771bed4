"""The server's own restarts: whether the last run ended cleanly, kept in ``<home>/run/lifecycle.json``.

``begin()`` marks the store as served by a running process; ``end()`` marks a clean exit. A process that
died without ``end()`` (SIGKILL, a crash in a runtime, a power cut) leaves the mark, and the next start
counts it as an unclean exit. Health and metrics report the recent ones, so that a crash loop under
systemd's ``Restart=on-failure`` shows instead of hiding behind a server that always comes back.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from lanai.store._fs import replace_atomic

__all__ = ["Lifecycle", "CRASH_LOOP", "running_url"]

log = logging.getLogger(__name__)

CRASH_LOOP = (3, 3600.0)
"""This many unclean exits within this many seconds is a crash loop: health says degraded."""
_KEEP_S = 7 * 86400.0


class Lifecycle:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.path = home / "run" / "lifecycle.json"
        self.started = time.time()
        self.unclean: list[float] = []
        """When the runs that did not end cleanly had started (epoch seconds), recent ones only."""

    def begin(self) -> None:
        previous = self._read()
        self.unclean = [t for t in previous.get("unclean", []) if isinstance(t, (int, float))]
        if previous.get("running"):
            when = float(previous.get("started", self.started))
            self.unclean.append(when)
            log.warning("the previous run (pid %s, started %s) did not end cleanly: it crashed or was killed",
                        previous.get("pid"), time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when)))  # fmt: skip
        self.unclean = [t for t in self.unclean if t > self.started - _KEEP_S]
        self._write(self._mark(running=True))

    def listening(self, url: str) -> None:
        """Note where this run answers on this machine (``lanai models activate`` finds it there)."""
        self._write(self._mark(running=True, url=url))

    def end(self) -> None:
        self._write(self._mark(running=False, ended=time.time()))

    def _mark(self, **state: Any) -> dict[str, Any]:
        return {**state, "started": self.started, "pid": os.getpid(), "unclean": self.unclean}

    def recent(self, window_s: float) -> int:
        """Unclean exits whose runs began within the last ``window_s`` seconds."""
        return sum(1 for t in self.unclean if t > time.time() - window_s)

    @property
    def crash_loop(self) -> bool:
        count, window = CRASH_LOOP
        return self.recent(window) >= count

    def _read(self) -> dict:  # type: ignore[type-arg]
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _write(self, data: dict) -> None:  # type: ignore[type-arg]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            replace_atomic(self.path, json.dumps(data).encode(), self.home)
        except OSError as exc:  # a read-only or full store must not stop the serving
            log.warning("cannot note the run in %s: %s", self.path, exc)


def running_url(home: Path) -> str | None:
    """The local URL of the server running on ``home`` now, or None when none is (never started, ended,
    or its process is gone)."""
    try:
        data = json.loads((home / "run" / "lifecycle.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not data.get("running") or not isinstance(data.get("url"), str):
        return None
    pid = data.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None  # killed without end(): the mark is stale
    except PermissionError:
        pass  # another user's process (a service account's): it is there
    return str(data["url"])
