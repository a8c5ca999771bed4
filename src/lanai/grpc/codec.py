"""Open Inference Protocol gRPC messages ⇄ lanai's values: pure functions, no I/O.

Tensors come as raw contents (``raw_input_contents``: little-endian, row-major bytes, one entry per
input, the same encoding as the REST binary tensor extension) or as typed contents (a repeated field per
datatype family). A response answers in kind: raw contents when the request sent raw contents or when an
output is FP16 (which has no typed field), typed contents otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from typing import Any

import numpy as np

from lanai.errors import BadInput
from lanai.grpc import inference_pb2 as pb
from lanai.protocol.infer import _from_binary, _to_binary
from lanai.protocol.v2 import ModelMetadata, RepositoryEntry, ServerMetadata
from lanai.types import DATATYPES, InferRequest, InferResponse, TensorSpec, datatype_of

__all__ = [
    "CONTENTS_FIELDS",
    "parse_infer_request",
    "encode_infer_response",
    "parse_parameters",
    "set_parameters",
    "server_metadata_message",
    "model_metadata_message",
    "repository_index_message",
]

CONTENTS_FIELDS: dict[str, str] = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
"""The ``InferTensorContents`` field of each datatype. FP16 has none: it travels as raw contents only."""

_RAW_HINT = "send one raw_input_contents entry per input, in the order of 'inputs', or typed contents in each input."


# -- requests ---------------------------------------------------------------------------------------


def parse_infer_request(message: pb.ModelInferRequest) -> tuple[InferRequest, bool]:
    """The request's tensors, outputs, id and parameters, and whether it used raw contents."""
    raw = message.raw_input_contents
    if not message.inputs:
        raise BadInput("the request has no inputs.", hint="add an InferInputTensor for each model input.")
    if raw and len(raw) != len(message.inputs):
        raise BadInput(
            f"the request has {len(message.inputs)} inputs but {len(raw)} raw_input_contents.", hint=_RAW_HINT
        )
    inputs: dict[str, np.ndarray] = {}
    for index, tensor in enumerate(message.inputs):
        name, datatype, shape = _header(index, tensor)
        if name in inputs:
            raise BadInput(f"input {name!r} is given twice.", hint="send each input once.")
        if raw:
            if tensor.HasField("contents"):
                raise BadInput(
                    f"input {name!r} has typed contents in a request with raw_input_contents.", hint=_RAW_HINT
                )
            inputs[name] = _from_binary(name, datatype, shape, raw[index])
        else:
            inputs[name] = _from_contents(name, datatype, shape, tensor.contents)
    outputs = [_requested(output) for output in message.outputs]
    request = InferRequest(inputs, outputs or None, message.id or None, parse_parameters(message.parameters))
    return request, bool(raw)


def _requested(output: pb.ModelInferRequest.InferRequestedOutputTensor) -> str:
    if not output.name:
        raise BadInput("a requested output has no name.", hint="name each output, or request none to get them all.")
    if "classification" in output.parameters:  # tritonclient's InferRequestedOutput(name, class_count=k)
        raise BadInput(
            f"output {output.name!r} asks for Triton's classification extension, which lanai does not serve.",
            hint="leave class_count at 0 and rank the scores, or POST the image to /v1/models/{model}/classify.",
        )
    return output.name


def _header(index: int, tensor: pb.ModelInferRequest.InferInputTensor) -> tuple[str, str, list[int]]:
    name, datatype, shape = tensor.name, tensor.datatype, list(tensor.shape)
    if not name:
        raise BadInput(f"input {index} has no name.", hint="name every input as the model's metadata does.")
    if datatype not in DATATYPES:
        raise BadInput(f"input {name!r} has datatype {datatype!r}.", hint=f"use one of {', '.join(DATATYPES)}.")
    if any(d < 0 for d in shape):
        raise BadInput(f"input {name!r} has shape {shape}.", hint="a request's shape has no -1: give every size.")
    return name, datatype, shape


def _from_contents(name: str, datatype: str, shape: list[int], contents: pb.InferTensorContents) -> np.ndarray:
    field = CONTENTS_FIELDS.get(datatype)
    if field is None:
        raise BadInput(
            f"input {name!r} is {datatype}, which has no typed contents.",
            hint=f"send {datatype} as raw_input_contents.",
        )
    others = [f.name for f, _ in contents.ListFields() if f.name != field]
    if others:
        raise BadInput(
            f"input {name!r} is {datatype} but its values are in {', '.join(others)}.",
            hint=f"{datatype} values go in {field}.",
        )
    values = getattr(contents, field)
    count = math.prod(shape)
    if len(values) != count:
        raise BadInput(
            f"input {name!r} has {len(values)} values in {field} but shape {shape} needs {count}.",
            hint="contents hold every element, flat and row-major; or send raw_input_contents.",
        )
    dtype = DATATYPES[datatype]
    if datatype == "BYTES":
        array = np.empty(count, dtype=object)
        array[:] = list(values)
    elif dtype.kind in "iu" and dtype.itemsize < 4:
        array = _narrow(name, datatype, np.array(values, dtype=np.int64), dtype)
    else:
        array = np.array(values, dtype=dtype)
    return array.reshape(shape)


def _narrow(name: str, datatype: str, wide: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """INT8/16 and UINT8/16 travel in 32-bit fields: refuse values that do not fit instead of wrapping."""
    limits = np.iinfo(dtype)
    if wide.size and (wide.min() < limits.min or wide.max() > limits.max):
        bad = wide[(wide < limits.min) | (wide > limits.max)][0]
        raise BadInput(f"input {name!r}: {bad} does not fit {datatype} ({limits.min}..{limits.max}).")
    return wide.astype(dtype)


# -- responses --------------------------------------------------------------------------------------


def encode_infer_response(response: InferResponse, raw: bool) -> pb.ModelInferResponse:
    """The response message; its tensors as raw contents when ``raw`` or when an output is FP16."""
    message = pb.ModelInferResponse(
        model_name=response.model_name, model_version=response.model_version, id=response.id or ""
    )
    set_parameters(message.parameters, response.parameters)
    raw = raw or any(array.dtype == np.float16 for array in response.outputs.values())
    for name, array in response.outputs.items():
        datatype = datatype_of(array.dtype)
        tensor = message.outputs.add(name=name, datatype=datatype, shape=array.shape)
        if raw:
            message.raw_output_contents.append(_to_binary(array))
        else:
            getattr(tensor.contents, CONTENTS_FIELDS[datatype]).extend(_typed_values(array))
    return message


def _typed_values(array: np.ndarray) -> list[Any]:
    flat = array.reshape(-1)
    if array.dtype == object or array.dtype.kind in "SU":
        return [v if isinstance(v, bytes) else str(v).encode() for v in flat]
    values: list[Any] = flat.tolist()
    return values


# -- parameters -------------------------------------------------------------------------------------


def parse_parameters(parameters: Mapping[str, pb.InferParameter]) -> dict[str, Any]:
    """A parameter map as Python values (bool, int, str or float); unset values are left out."""
    found = {}
    for key, parameter in parameters.items():
        kind = parameter.WhichOneof("parameter_choice")
        if kind is not None:
            found[key] = getattr(parameter, kind)
    return found


def set_parameters(target: MutableMapping[str, pb.InferParameter], values: Mapping[str, Any]) -> None:
    """Fill a parameter map: bool, int (int64, else uint64), float, anything else as a string."""
    for key, value in values.items():
        parameter = target[key]
        if isinstance(value, bool):
            parameter.bool_param = value
        elif isinstance(value, int) and -(2**63) <= value < 2**63:
            parameter.int64_param = value
        elif isinstance(value, int) and 0 <= value < 2**64:
            parameter.uint64_param = value
        elif isinstance(value, float):
            parameter.double_param = value
        else:
            parameter.string_param = str(value)


# -- metadata ---------------------------------------------------------------------------------------


def server_metadata_message(metadata: ServerMetadata) -> pb.ServerMetadataResponse:
    return pb.ServerMetadataResponse(name=metadata.name, version=metadata.version, extensions=metadata.extensions)


def model_metadata_message(metadata: ModelMetadata) -> pb.ModelMetadataResponse:
    """The model's metadata; lanai's ``parameters`` (task, backend…) have no field in this message."""
    return pb.ModelMetadataResponse(
        name=metadata.name,
        versions=metadata.versions,
        platform=metadata.platform,
        inputs=_tensor_metadata(metadata.inputs),
        outputs=_tensor_metadata(metadata.outputs),
    )


def _tensor_metadata(specs: Iterable[TensorSpec]) -> list[pb.ModelMetadataResponse.TensorMetadata]:
    return [pb.ModelMetadataResponse.TensorMetadata(name=s.name, datatype=s.datatype, shape=s.shape) for s in specs]


def repository_index_message(entries: Sequence[RepositoryEntry]) -> pb.RepositoryIndexResponse:
    models = [
        pb.RepositoryIndexResponse.ModelIndex(name=e.name, version=e.version, state=e.state, reason=e.reason)
        for e in entries
    ]
    return pb.RepositoryIndexResponse(models=models)
