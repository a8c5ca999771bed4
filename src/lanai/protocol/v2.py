"""Open Inference Protocol values: server and model metadata, readiness, the model repository.

Each is a wire value (see ``wire``): the REST door sends ``to_dict()``, the gRPC door maps the fields to
its messages, the client reads ``from_dict()``, and the OpenAPI document publishes the schema.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from lanai.errors import BadInput
from lanai.protocol.wire import Wire, doc
from lanai.types import TensorSpec

__all__ = [
    "EXTENSIONS",
    "ServerMetadata",
    "ServerLive",
    "ServerReady",
    "ModelReady",
    "ModelParameters",
    "ModelMetadata",
    "RepositoryEntry",
    "RepositoryIndexRequest",
    "LoadResult",
    "UnloadResult",
    "refuse_load_parameters",
]

EXTENSIONS = ("binary_tensor_data", "model_repository")


@dataclass(frozen=True)
class ServerMetadata(Wire):
    """Who the server is and which protocol extensions it speaks."""

    name: str = doc("The server's name.", examples=["lanai"])
    version: str = doc("The lanai version.")
    extensions: tuple[str, ...] = doc("Protocol extensions.", examples=[list(EXTENSIONS)])


@dataclass(frozen=True)
class ServerLive(Wire):
    """The server process answers."""

    live: bool = doc("Always true when there is an answer.")


@dataclass(frozen=True)
class ServerReady(Wire):
    """Whether the server takes requests."""

    ready: bool = doc("False while starting or draining.")


@dataclass(frozen=True)
class ModelReady(Wire):
    """A loaded model is ready."""

    name: str = doc("The model's name.")
    ready: bool = doc("True: the model takes requests.")


@dataclass(frozen=True)
class ModelParameters(Wire):
    """How lanai runs the model."""

    task: str = doc("What the model does, e.g. classify.")
    backend: str = doc("The runtime, e.g. onnx.")
    execution_provider: str = doc("Where it runs, e.g. cpu or cuda.")
    max_batch_size: int = doc("The largest batch the server forms (1: batching off).")


@dataclass(frozen=True)
class ModelMetadata(Wire):
    """A loaded model's inputs and outputs."""

    name: str = doc("The model's name.")
    versions: tuple[str, ...] = doc("The version loaded (one).")
    platform: str = doc("Informational, e.g. onnx_onnxv1.")
    inputs: tuple[TensorSpec, ...] = doc("The tensors the model takes.")
    outputs: tuple[TensorSpec, ...] = doc("The tensors the model returns.")
    parameters: ModelParameters = doc("How lanai runs the model.")


@dataclass(frozen=True)
class RepositoryEntry(Wire):
    """A model in the store."""

    name: str = doc("The model's name.")
    version: str = doc("The loaded version, else the active one; empty when there is none.")
    state: Literal["READY", "UNAVAILABLE"] = doc("READY: loaded and serving.")
    reason: str = doc("Why it is unavailable; empty when ready.")


@dataclass(frozen=True)
class RepositoryIndexRequest(Wire):
    """Which models to list."""

    ready: bool = doc("List only the models that are loaded.", default=False)


@dataclass(frozen=True)
class LoadResult(Wire):
    """A model was loaded (or reloaded)."""

    name: str = doc("The model's name.")
    load: bool = doc("True.")


@dataclass(frozen=True)
class UnloadResult(Wire):
    """A model was unloaded."""

    name: str = doc("The model's name.")
    unload: bool = doc("True.")


def refuse_load_parameters(model: str, names: Iterable[str]) -> None:
    """A repository load with parameters (Triton's ``config``, ``file:…``) is refused, not ignored:
    lanai loads the active version of its store, so a load that carried its own config or files would
    quietly do something else than asked."""
    given = sorted(names)
    if given:
        raise BadInput(
            f"lanai loads the active version from its store; it takes no load parameters ({', '.join(given)}).",
            hint=f"add a new version with 'lanai models add', activate it, then load {model!r}.",
        )
