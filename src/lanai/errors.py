"""Every error lanai raises on purpose, in one tree.

Errors carry a message that says what was wrong and, where there is one, a hint that says what to do.
They carry no HTTP status: the transport maps each class to its own status code.
"""

from __future__ import annotations

__all__ = [
    "LanaiError",
    "BadInput",
    "WrongTask",
    "PayloadTooLarge",
    "Unauthenticated",
    "PermissionDenied",
    "RateLimited",
    "NotFound",
    "Conflict",
    "ModelNotFound",
    "VersionNotFound",
    "ModelLoadError",
    "Overloaded",
    "NotReady",
    "StoreError",
    "InvalidName",
    "ConfigError",
    "BackendUnavailable",
    "OptimizeError",
    "RegistryError",
    "SignatureError",
]


class LanaiError(Exception):
    """Base class of lanai's errors. ``str(err)`` is the message followed by its hint."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} Hint: {self.hint}"
        return self.message


class BadInput(LanaiError):
    """The client sent something lanai cannot use: a corrupt image, a wrong shape, malformed JSON."""


class WrongTask(BadInput):
    """The model serves another task than the one asked of it. Doors add where that task is served."""

    def __init__(self, message: str, *, model: str, task: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.model = model
        self.task = task
        """The task the model does serve."""


class PayloadTooLarge(BadInput):
    """A request body or an image is larger than the configured limit."""


class Unauthenticated(LanaiError):
    """The request carries no valid credential, and what it asks needs one."""


class PermissionDenied(LanaiError):
    """The credential is valid but may not do this (its role, or the models it is limited to)."""


class RateLimited(LanaiError):
    """This caller sent more than its limit allows; it may retry after ``retry_after`` seconds."""

    def __init__(self, message: str, *, hint: str | None = None, retry_after: float = 1.0) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class NotFound(LanaiError):
    """What the request names does not exist: a key, a paired device, a model (``ModelNotFound``)."""


class Conflict(LanaiError):
    """The request would clash with what exists: a name already taken."""


class ModelNotFound(NotFound):
    """No model of that name is in the store or loaded."""


class VersionNotFound(ModelNotFound):
    """The model exists but not in that version."""


class ModelLoadError(LanaiError):
    """A model file could not be loaded by its backend."""


class Overloaded(LanaiError):
    """A queue is full; the client should retry after ``retry_after`` seconds."""

    def __init__(self, message: str, *, hint: str | None = None, retry_after: float = 1.0) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class NotReady(LanaiError):
    """The server or the model is starting or shutting down."""


class StoreError(LanaiError):
    """The model store refused an operation (missing file, active version removal, …)."""


class InvalidName(StoreError, BadInput):
    """A model name that is not ``[a-z0-9][a-z0-9._-]{0,63}``."""


class ConfigError(LanaiError):
    """A setting has a value lanai cannot use."""


class BackendUnavailable(LanaiError):
    """The backend a model needs is not installed (an extra is missing)."""


class OptimizeError(LanaiError):
    """A step of ``lanai optimize`` could not run, or lost more accuracy than allowed."""

    def __init__(self, step: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{step}: {message}", hint=hint)
        self.step = step


class RegistryError(LanaiError):
    """A model registry (an OCI registry) refused a push or a pull, or sent something that is not a
    whole, well-formed lanai artifact."""


class SignatureError(RegistryError):
    """An artifact is unsigned, or its signature does not verify against any trusted key."""
