"""Backends run models. Each is imported lazily, so a missing extra only matters when it is used."""

from __future__ import annotations

import importlib
from typing import Any, Literal

from lanai.backends.base import BackendOptions, LanguageBackend, TensorBackend
from lanai.errors import BackendUnavailable, ConfigError

__all__ = ["TensorBackend", "LanguageBackend", "BackendOptions", "BACKENDS", "backend_class", "backend_kind"]

# name → ("module:Class", the extra that installs its runtime, the kind of model it runs)
BACKENDS: dict[str, tuple[str, str, Literal["tensor", "language"]]] = {
    "onnx": ("lanai.backends.onnx:OnnxBackend", "lanai", "tensor"),
    "litert": ("lanai.backends.litert:LiteRTBackend", "lanai[litert]", "tensor"),
    # HailoRT is not on PyPI (apt's hailo-all on a Pi 5): the backend's load says how to install it
    "hailo": ("lanai.backends.hailo:HailoBackend", "lanai", "tensor"),
    "llamacpp": ("lanai.backends.llamacpp:LlamaCppBackend", "lanai[llm]", "language"),
}


def backend_kind(name: str) -> Literal["tensor", "language"]:
    """Whether the backend called ``name`` runs tensor models or language models."""
    _known(name)
    return BACKENDS[name][2]


def _known(name: str) -> None:
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}.", hint=f"use one of: {', '.join(sorted(BACKENDS))}.")


def backend_class(name: str) -> Any:
    """The class of the backend called ``name`` (a TensorBackend or LanguageBackend), imported now."""
    _known(name)
    target, extra, _ = BACKENDS[name]
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendUnavailable(
            f"the {name!r} backend cannot be imported ({exc}).", hint=f"pip install '{extra}'"
        ) from exc
    return getattr(module, class_name)
