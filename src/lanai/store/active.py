"""The ``active`` file of a model: its active version and the versions active before it."""

from __future__ import annotations

import sys
from collections.abc import Callable, Container
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from lanai.errors import StoreError
from lanai.store._fs import replace_atomic

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["HISTORY_LIMIT", "ActiveState", "read_active", "write_active", "update_active"]

HISTORY_LIMIT = 32


@dataclass(frozen=True)
class ActiveState:
    """``version`` is active; ``history`` lists the versions active before it, oldest first."""

    version: int
    history: tuple[int, ...] = ()

    def activated(self, version: int) -> ActiveState:
        """The state after activating ``version``: the current one moves onto the history."""
        if version == self.version:
            return self
        return ActiveState(version, (*self.history, self.version)[-HISTORY_LIMIT:])

    def rolled_back(self, existing: Container[int]) -> ActiveState | None:
        """The state after going back to the latest earlier version still in ``existing``.

        Rollback pops the history like an undo stack, so rolling back twice goes back two steps.
        None if no earlier version exists any more.
        """
        history = list(self.history)
        while history:
            version = history.pop()
            if version != self.version and version in existing:
                return ActiveState(version, tuple(history))
        return None

    def to_toml(self) -> str:
        return tomli_w.dumps({"version": self.version, "history": list(self.history)})


def read_active(path: Path) -> ActiveState | None:
    """The state in the active file at ``path``; None if there is none; StoreError if it is invalid."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as err:
        raise _invalid(path, "not UTF-8 text") from err
    try:
        data = tomllib.loads(text)
        state = ActiveState(int(data["version"]), tuple(int(v) for v in data.get("history", ())))
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as err:
        raise _invalid(path, f"missing key {err}" if isinstance(err, KeyError) else str(err)) from err
    if state.version < 1:
        raise _invalid(path, f"version {state.version} is not a version number")
    return state


def write_active(path: Path, state: ActiveState, staging: Path) -> None:
    """Replace the active file atomically (temp file in ``staging``, fsync, rename, fsync the dir)."""
    replace_atomic(path, state.to_toml().encode("utf-8"), staging)


def update_active(
    path: Path,
    change: Callable[[ActiveState | None], ActiveState],
    staging: Path,
    *,
    lenient: bool = False,
) -> ActiveState:
    """Read the active file, apply ``change`` and write the result if it differs; return it.

    The caller holds a lock that serialises updates. With ``lenient`` a damaged file counts as absent.
    """
    try:
        old = read_active(path)
    except StoreError:
        if not lenient:
            raise
        old = None
    new = change(old)
    if new != old:
        write_active(path, new, staging)
    return new


def _invalid(path: Path, detail: str) -> StoreError:
    return StoreError(
        f"active file {path} is not valid: {detail}",
        hint="activate a version again to rewrite it",
    )
