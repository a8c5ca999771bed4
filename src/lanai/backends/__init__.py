"""Backends run models. Each is imported lazily, so a missing extra only matters when it is used."""

from __future__ import annotations

import importlib

from lanai.backends.base import Backend, BackendOptions
from lanai.errors import BackendUnavailable, ConfigError

__all__ = ["Backend", "BackendOptions", "BACKENDS", "backend_class"]

# name → ("module:Class", the extra that installs its runtime)
BACKENDS: dict[str, tuple[str, str]] = {
    "onnx": ("lanai.backends.onnx:OnnxBackend", "lanai"),
    "llamacpp": ("lanai.backends.llamacpp:LlamaCppBackend", "lanai[llm]"),
    "litert": ("lanai.backends.litert:LiteRTBackend", "lanai[litert]"),
}


def backend_class(name: str) -> type[Backend]:
    """The class of the backend called ``name``, imported now."""
    try:
        target, extra = BACKENDS[name]
    except KeyError:
        raise ConfigError(f"unknown backend {name!r}.", hint=f"use one of: {', '.join(sorted(BACKENDS))}.") from None
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendUnavailable(
            f"the {name!r} backend cannot be imported ({exc}).", hint=f"pip install '{extra}'"
        ) from exc
    return getattr(module, class_name)  # type: ignore[no-any-return]
