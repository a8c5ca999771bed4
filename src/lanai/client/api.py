"""The server's endpoints as call descriptions: health, metadata, the repository, tasks, infer, pipelines.

Each function builds a :class:`~lanai.client.calls.Call`; ``Client`` and ``AsyncClient`` expose every
one of them as a method of the same name and arguments (minus ``self``), so this is the API reference.
Language models are in ``llm``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

from lanai.client.calls import Call, Data, from_json, json_request, read_data, read_json, segment, wire_decoder
from lanai.client.errors import ProtocolError
from lanai.protocol.health import HealthReport
from lanai.protocol.infer import encode_infer_request, parse_infer_response
from lanai.protocol.openai import ModelCard, ModelList
from lanai.protocol.v2 import LoadResult, ModelMetadata, RepositoryEntry, ServerMetadata, UnloadResult
from lanai.types import InferResponse

if TYPE_CHECKING:
    from lanai.protocol.pipelines import PipelineList, PipelineResult
    from lanai.tasks.classify import Classification

__all__ = ["health", "ready", "server_metadata", "model_metadata", "model_ready", "models",
           "repository_index", "load", "unload", "run_task", "classify", "infer", "pipelines",
           "run_pipeline"]  # fmt: skip

_HEADER_LENGTH = "Inference-Header-Content-Length"


def _model_path(model: str, version: str | None) -> str:
    path = f"/v2/models/{segment(model)}"
    return path if version is None else f"{path}/versions/{segment(version)}"


def health(*, server: str | None = None) -> Call[HealthReport]:
    """The server's health report (``GET /health``), also while it is starting or draining.

    ``server`` asks that one server (no failover); by default, the server requests would go to now."""
    return Call(method="GET", path="/health", accept=frozenset({200, 503}), server=server,
                decode=wire_decoder(HealthReport))  # fmt: skip


def ready(*, server: str | None = None) -> Call[bool]:
    """Whether the server takes requests (``GET /v2/health/ready``): False while starting or draining."""
    return Call(method="GET", path="/v2/health/ready", accept=frozenset({200, 503}), server=server,
                decode=lambda response: response.status_code == 200)  # fmt: skip


def server_metadata(*, server: str | None = None) -> Call[ServerMetadata]:
    """The server's name, version and protocol extensions (``GET /v2``)."""
    return Call(method="GET", path="/v2", server=server, decode=wire_decoder(ServerMetadata))


def model_metadata(model: str, version: str | None = None) -> Call[ModelMetadata]:
    """A loaded model's inputs, outputs and how it runs (``GET /v2/models/{model}``)."""
    return Call(method="GET", path=_model_path(model, version), decode=wire_decoder(ModelMetadata))


def model_ready(model: str, version: str | None = None) -> Call[bool]:
    """Whether the model (in that version) is loaded and takes requests. Never raises ModelNotFound."""
    return Call(method="GET", path=_model_path(model, version) + "/ready", accept=frozenset({200, 404, 503}),
                decode=lambda response: response.status_code == 200)  # fmt: skip


def models() -> Call[list[ModelCard]]:
    """The loaded models, language models included, with their tasks (``GET /v1/models``)."""
    return Call(method="GET", path="/v1/models", decode=lambda response: list(wire_decoder(ModelList)(response).data))


def repository_index(*, ready: bool = False) -> Call[list[RepositoryEntry]]:
    """Every model in the store with its state (``POST /v2/repository/index``); ``ready``: loaded only."""

    def decode(response: httpx.Response) -> list[RepositoryEntry]:
        entries = read_json(response)
        if not isinstance(entries, list):
            raise ProtocolError("the repository index is not a list.", status=response.status_code)
        return [from_json(RepositoryEntry, entry, response) for entry in entries]

    body, headers = json_request({"ready": ready})
    return Call(method="POST", path="/v2/repository/index", content=body, headers=headers, decode=decode)


def load(model: str, *, retry_unsafe: bool = False) -> Call[LoadResult]:
    """Load (or reload) the model's active version (``POST /v2/repository/models/{model}/load``).

    Not sent again after a failure that struck once it was sent, unless ``retry_unsafe``."""
    return Call(method="POST", path=f"/v2/repository/models/{segment(model)}/load", idempotent=retry_unsafe,
                decode=wire_decoder(LoadResult))  # fmt: skip


def unload(model: str, *, retry_unsafe: bool = False) -> Call[UnloadResult]:
    """Unload the model (``POST /v2/repository/models/{model}/unload``); see ``load`` for ``retry_unsafe``."""
    return Call(method="POST", path=f"/v2/repository/models/{segment(model)}/unload", idempotent=retry_unsafe,
                decode=wire_decoder(UnloadResult))  # fmt: skip


def _param(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def run_task(model: str, task: str, data: Data | str, *, version: str | None = None, **params: Any) -> Call[Any]:
    """Run any task (``POST /v1/models/{model}/{task}``): image bytes (or a file's path) or text in,
    the task's result out: its result class from the task registry where this lanai knows the task, else
    the JSON as a dict. ``params`` are the task's parameters (``top_k=3``)."""
    path = f"/v1/models/{segment(model)}" + ("" if version is None else f"/versions/{segment(version)}")
    if isinstance(data, str):
        body, headers = data.encode(), {"Content-Type": "text/plain; charset=utf-8"}
    else:
        body, headers = read_data(data), {"Content-Type": "application/octet-stream"}

    def decode(response: httpx.Response) -> Any:
        from lanai.tasks import TASKS  # light (numpy, wire values), yet only when a task answers

        result = TASKS[task].result if task in TASKS else None
        answer = read_json(response)
        return answer if result is None else from_json(result, answer, response)

    query = {key: _param(value) for key, value in params.items()}
    return Call(method="POST", path=f"{path}/{segment(task)}", params=query, content=body, headers=headers,
                decode=decode)  # fmt: skip


def classify(model: str, image: Data | str, *, top_k: int = 5, version: str | None = None) -> Call[Classification]:
    """The ``top_k`` best classes of an image: its bytes, or the path of an image file."""
    call: Call[Classification] = run_task(model, "classify", _image(image), version=version, top_k=top_k)
    return call


def _image(image: Data | str) -> bytes:
    """An image's bytes; a str is a file's path (never text)."""
    return read_data(Path(image) if isinstance(image, str) else image)


def infer(
    model: str,
    inputs: Mapping[str, np.ndarray],
    outputs: list[str] | None = None,
    *,
    version: str | None = None,
    binary: bool = True,
    request_id: str | None = None,
) -> Call[InferResponse]:
    """Run the model on named tensors (Open Inference Protocol, ``POST /v2/models/{model}/infer``).

    Arrays go out and come back as binary tensors (``binary=False``: JSON); ``outputs`` picks outputs
    (None: all). The answer's ``outputs`` maps names to numpy arrays."""
    body, header_length = encode_infer_request(dict(inputs), outputs, binary=binary, request_id=request_id)
    if header_length is None:
        headers = {"Content-Type": "application/json"}
    else:
        headers = {"Content-Type": "application/octet-stream", _HEADER_LENGTH: str(header_length)}

    def decode(response: httpx.Response) -> InferResponse:
        from lanai.errors import BadInput

        length = response.headers.get(_HEADER_LENGTH)
        try:
            return parse_infer_response(response.content, None if length is None else int(length))
        except (BadInput, ValueError) as exc:
            raise ProtocolError(str(exc), status=response.status_code) from None

    return Call(method="POST", path=_model_path(model, version) + "/infer", content=body, headers=headers,
                decode=decode)  # fmt: skip


def pipelines() -> Call[PipelineList]:
    """The pipelines the server has, and the files it could not read (``GET /v1/pipelines``)."""

    def decode(response: httpx.Response) -> PipelineList:
        from lanai.protocol.pipelines import PipelineList

        return from_json(PipelineList, read_json(response), response)

    return Call(method="GET", path="/v1/pipelines", decode=decode)


def run_pipeline(name: str, image: Data | str) -> Call[PipelineResult]:
    """Run a pipeline on an image (``POST /v1/pipelines/{name}``): every step's result, in order."""

    def decode(response: httpx.Response) -> PipelineResult:
        from lanai.protocol.pipelines import PipelineResult

        return from_json(PipelineResult, read_json(response), response)

    return Call(method="POST", path=f"/v1/pipelines/{segment(name)}", content=_image(image),
                headers={"Content-Type": "application/octet-stream"}, decode=decode)  # fmt: skip
