"""Model names: checked before any name becomes part of a path."""

from __future__ import annotations

import re

from lanai.errors import InvalidName

__all__ = ["NAME_PATTERN", "validate_name"]

NAME_PATTERN = r"[a-z0-9][a-z0-9._-]{0,63}"
_NAME = re.compile(NAME_PATTERN)
_HINT = (
    "use 1 to 64 characters: lowercase letters, digits, '.', '_' or '-', "
    "starting with a letter or a digit (for example 'mobilenet-v3')"
)


def validate_name(name: object, what: str = "model") -> str:
    """Return ``name`` if it is a valid ``what`` (model, pipeline) name, else raise :class:`InvalidName`.

    A valid name matches ``[a-z0-9][a-z0-9._-]{0,63}``, so it can never be empty, ``.``, ``..``,
    contain a path separator, or start with a dot or a dash.
    """
    if not isinstance(name, str):
        raise InvalidName(f"a {what} name must be a string, not {type(name).__name__}", hint=_HINT)
    if _NAME.fullmatch(name) is None:
        raise InvalidName(f"{name!r} is not a valid {what} name", hint=_hint_for(name))
    return name


def _hint_for(name: str) -> str:
    lowered = name.lower()
    if lowered != name and _NAME.fullmatch(lowered):
        return f"names are lowercase: try {lowered!r}"
    return _HINT
