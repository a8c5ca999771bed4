"""Checks of tensor requests against a model's metadata, with messages that say what to fix."""

from __future__ import annotations

import numpy as np

from lanai.errors import BadInput
from lanai.types import InferRequest, ModelInfo, TensorSpec, datatype_of

__all__ = ["validate"]


def validate(info: ModelInfo, request: InferRequest) -> None:
    """Check names, datatypes and shapes against the model's metadata, with messages that say what to fix."""
    expected = {spec.name: spec for spec in info.inputs}
    unknown = set(request.inputs) - set(expected)
    if unknown:
        raise BadInput(
            f"model {info.name!r} has no input named {', '.join(sorted(unknown))}.",
            hint=f"its inputs are {', '.join(expected)}.",
        )
    batch = None
    for spec in info.inputs:
        if spec.name not in request.inputs:
            raise BadInput(f"input {spec.name!r} is missing.", hint=f"send {_describe(spec)}.")
        batch = _check_tensor(spec, request.inputs[spec.name], batch)
    names = {spec.name for spec in info.outputs}
    for wanted in request.outputs or ():
        if wanted not in names:
            raise BadInput(
                f"model {info.name!r} has no output named {wanted!r}.", hint=f"its outputs are {', '.join(names)}."
            )


def _check_tensor(spec: TensorSpec, array: np.ndarray, batch: int | None) -> int:
    datatype = datatype_of(array.dtype)
    if datatype != spec.datatype:
        raise BadInput(
            f"input {spec.name!r} is {datatype}, the model takes {spec.datatype}.", hint=f"send {_describe(spec)}."
        )
    shape = array.shape
    if len(shape) != len(spec.shape) or any(w not in (-1, g) for w, g in zip(spec.shape, shape)):
        raise BadInput(
            f"input {spec.name!r} has shape {list(shape)}, the model takes {list(spec.shape)} (-1: any size).",
            hint=f"send {_describe(spec)}.",
        )
    if shape and batch is not None and shape[0] != batch:
        raise BadInput(f"input {spec.name!r} has batch size {shape[0]}, other inputs have {batch}.")
    if shape and shape[0] == 0:
        raise BadInput(f"input {spec.name!r} has an empty batch.", hint="send at least one row.")
    return shape[0] if shape else 1


def _describe(spec: TensorSpec) -> str:
    return f"{spec.name} as {spec.datatype} with shape {list(spec.shape)}"
