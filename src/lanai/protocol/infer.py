"""Open Inference Protocol (v2) infer bodies ↔ InferRequest / InferResponse.

Handles JSON tensors and the binary tensor extension: a JSON header of
``Inference-Header-Content-Length`` bytes followed by raw little-endian, row-major tensors.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import numpy as np

from lanai.errors import BadInput
from lanai.types import DATATYPES, InferRequest, InferResponse, TensorSpec, datatype_of

__all__ = [
    "parse_infer_request",
    "encode_infer_response",
    "parse_raw_request",
    "encode_infer_request",
    "parse_infer_response",
]

_HINT = "see the Open Inference Protocol: inputs are {name, shape, datatype, data}."


def parse_infer_request(body: bytes, header_length: int | None) -> tuple[InferRequest, set[str], bool]:
    """Parse a body; returns the request, the outputs asked for as binary, and 'all outputs binary'."""
    binary: bytes | memoryview
    if header_length is None:
        header, binary = body, b""
    else:
        if not 0 < header_length <= len(body):
            raise BadInput(
                f"Inference-Header-Content-Length is {header_length} but the body has {len(body)} bytes.",
                hint="set it to the length of the JSON header alone.",
            )
        header, binary = body[:header_length], memoryview(body)[header_length:]
    doc = _load_json(header)
    inputs_doc = doc.get("inputs")
    if not isinstance(inputs_doc, list) or not inputs_doc:
        raise BadInput("the request has no 'inputs' list.", hint=_HINT)
    inputs, offset = {}, 0
    for entry in inputs_doc:
        name, array, used = _parse_input(entry, binary, offset)
        if name in inputs:
            raise BadInput(f"input {name!r} is given twice.")
        inputs[name], offset = array, offset + used
    if offset != len(binary):
        raise BadInput(
            f"the body has {len(binary) - offset} bytes after the last binary tensor.",
            hint="binary_data_size of each input must add up to the bytes after the JSON header.",
        )
    outputs, binary_outputs = _parse_outputs(doc.get("outputs"))
    parameters = doc.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise BadInput("'parameters' must be an object.")
    request_id = doc.get("id")
    all_binary = bool(parameters.get("binary_data_output", False))
    return (
        InferRequest(inputs, outputs, None if request_id is None else str(request_id), parameters),
        binary_outputs,
        all_binary,
    )


def parse_raw_request(body: bytes, spec: TensorSpec) -> InferRequest:
    """``Inference-Header-Content-Length: 0``: the body is the single input, batch 1."""
    shape = (1, *spec.shape[1:])
    if any(d < 0 for d in shape):
        raise BadInput(
            f"input {spec.name!r} has a variable shape {list(spec.shape)}, so a raw body cannot be shaped.",
            hint="send a JSON header with the shape (binary tensor extension).",
        )
    array = _from_binary(spec.name, spec.datatype, list(shape), memoryview(body))
    return InferRequest({spec.name: array})


def _load_json(data: bytes | memoryview) -> dict[str, Any]:
    try:
        doc = json.loads(bytes(data))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(
            f"the request is not valid JSON: {exc}.",
            hint="send a JSON object with 'inputs'; a body with binary tensors needs the "
            "Inference-Header-Content-Length header.",
        ) from None
    if not isinstance(doc, dict):
        raise BadInput("the request must be a JSON object.", hint=_HINT)
    return doc


def _parse_input(entry: Any, binary: bytes | memoryview, offset: int) -> tuple[str, np.ndarray, int]:
    if not isinstance(entry, dict):
        raise BadInput("each input must be a JSON object.", hint=_HINT)
    name, datatype, shape = entry.get("name"), entry.get("datatype"), entry.get("shape")
    if not isinstance(name, str) or not name:
        raise BadInput("an input has no 'name'.", hint=_HINT)
    if datatype not in DATATYPES:
        raise BadInput(f"input {name!r} has datatype {datatype!r}.", hint=f"use one of {', '.join(DATATYPES)}.")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise BadInput(f"input {name!r} has shape {shape!r}.", hint="shape is a list of non-negative integers.")
    size = (entry.get("parameters") or {}).get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or size < 0 or offset + size > len(binary):
            raise BadInput(
                f"input {name!r} has binary_data_size {size!r} but only {len(binary) - offset} binary bytes remain.",
                hint="binary_data_size is the byte length of this input's raw tensor.",
            )
        return name, _from_binary(name, datatype, shape, binary[offset : offset + size]), size
    if "data" not in entry:
        raise BadInput(f"input {name!r} has neither 'data' nor a binary_data_size parameter.", hint=_HINT)
    return name, _from_json(name, datatype, shape, entry["data"]), 0


def _from_json(name: str, datatype: str, shape: list[int], data: Any) -> np.ndarray:
    count = math.prod(shape)
    try:
        if datatype == "BYTES":
            flat = np.asarray(data, dtype=object).reshape(-1)
            array = np.array([v.encode() if isinstance(v, str) else bytes(v) for v in flat], dtype=object)
        else:
            with np.errstate(over="raise", invalid="raise"):  # 1e300 as FP32: refused, not inf with a warning
                array = np.asarray(data, dtype=DATATYPES[datatype]).reshape(-1)
    except (TypeError, ValueError, OverflowError, FloatingPointError) as exc:
        raise BadInput(f"input {name!r}: data does not fit {datatype} ({exc}).", hint=_HINT) from None
    if array.size != count:
        raise BadInput(
            f"input {name!r} has {array.size} values but shape {shape} needs {count}.",
            hint="data holds every element, flat or nested, row-major.",
        )
    return array.reshape(shape)


def _from_binary(name: str, datatype: str, shape: list[int], raw: bytes | memoryview) -> np.ndarray:
    count = math.prod(shape)
    if datatype == "BYTES":
        return _parse_bytes_tensor(name, raw, count).reshape(shape)
    dtype = DATATYPES[datatype].newbyteorder("<")
    if len(raw) != count * dtype.itemsize:
        raise BadInput(
            f"input {name!r} has {len(raw)} bytes but shape {shape} of {datatype} needs {count * dtype.itemsize}.",
            hint="binary tensors are raw little-endian, row-major, without padding.",
        )
    array = np.frombuffer(raw, dtype=dtype)
    if datatype == "BOOL":
        array = array.view(np.uint8).astype(bool)
    return array.reshape(shape).astype(DATATYPES[datatype], copy=False)


def _parse_bytes_tensor(name: str, raw: bytes | memoryview, count: int) -> np.ndarray:
    items, offset = [], 0
    raw = bytes(raw)
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise BadInput(f"input {name!r}: a BYTES element's 4-byte length is cut off.")
        (length,) = struct.unpack_from("<I", raw, offset)
        if offset + 4 + length > len(raw):
            raise BadInput(f"input {name!r}: a BYTES element claims {length} bytes past the end.")
        items.append(raw[offset + 4 : offset + 4 + length])
        offset += 4 + length
    if len(items) != count:
        raise BadInput(f"input {name!r} has {len(items)} BYTES elements, its shape needs {count}.")
    return np.array(items, dtype=object)


def _parse_outputs(outputs: Any) -> tuple[list[str] | None, set[str]]:
    if outputs is None:
        return None, set()
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        raise BadInput("'outputs' must be a list of objects with a 'name'.", hint=_HINT)
    binary = {o["name"] for o in outputs if (o.get("parameters") or {}).get("binary_data")}
    return [o["name"] for o in outputs], binary


def encode_infer_response(
    response: InferResponse, binary_outputs: set[str], all_binary: bool
) -> tuple[bytes, int | None]:
    """The body, and the JSON header's length when binary tensors follow it (else None)."""
    outputs, blobs = [], []
    for name, array in response.outputs.items():
        entry: dict[str, Any] = {"name": name, "datatype": datatype_of(array.dtype), "shape": list(array.shape)}
        if all_binary or name in binary_outputs or array.dtype == np.float16:
            blob = _to_binary(array)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = _to_json_data(array)
        outputs.append(entry)
    doc: dict[str, Any] = {"model_name": response.model_name, "model_version": response.model_version}
    if response.id is not None:
        doc["id"] = response.id
    doc["outputs"] = outputs
    header = json.dumps(doc, separators=(",", ":")).encode()
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)


def _to_json_data(array: np.ndarray) -> list[Any]:
    if array.dtype == object or array.dtype.kind in ("S", "U"):
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in array.reshape(-1)]
    return array.reshape(-1).tolist()  # type: ignore[no-any-return]


def _to_binary(array: np.ndarray) -> bytes:
    if array.dtype == object or array.dtype.kind in ("S", "U"):
        parts = []
        for v in array.reshape(-1):
            data = v if isinstance(v, bytes) else str(v).encode()
            parts.append(struct.pack("<I", len(data)) + data)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


# -- the client's direction: a request out, a response in ---------------------------------------------


def encode_infer_request(
    inputs: dict[str, np.ndarray],
    outputs: list[str] | None = None,
    *,
    binary: bool = True,
    request_id: str | None = None,
) -> tuple[bytes, int | None]:
    """The body of an infer request, and the JSON header's length when binary tensors follow it (else None).

    With ``binary`` the inputs travel as raw tensors and the outputs are asked for as binary too; without
    it everything is JSON, except FP16 inputs, which JSON cannot carry faithfully. ``outputs`` names the
    outputs wanted (None: all). Arrays of str or bytes travel as BYTES.
    """
    if not inputs:
        raise BadInput("an infer request needs at least one input.", hint=_HINT)
    entries, blobs = [], []
    for name, value in inputs.items():
        array = np.asarray(value)
        try:
            datatype = datatype_of(array.dtype)
        except KeyError:
            raise BadInput(
                f"input {name!r} has dtype {array.dtype}, which the protocol cannot carry.",
                hint=f"convert it to one of {', '.join(DATATYPES)}.",
            ) from None
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if binary or array.dtype == np.float16:
            blob = _to_binary(array)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = _to_json_data(array)
        entries.append(entry)
    doc: dict[str, Any] = {}
    if request_id is not None:
        doc["id"] = request_id
    doc["inputs"] = entries
    if outputs is not None:
        doc["outputs"] = [{"name": o, "parameters": {"binary_data": binary}} for o in outputs]
    elif binary:
        doc["parameters"] = {"binary_data_output": True}
    header = json.dumps(doc, separators=(",", ":")).encode()
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)


def parse_infer_response(body: bytes, header_length: int | None) -> InferResponse:
    """An infer response body (JSON, or a JSON header of ``header_length`` bytes and binary tensors).

    The arrays are the caller's own (writable). BadInput says what is malformed.
    """
    binary: bytes | memoryview = b""
    if header_length is not None:
        if not 0 < header_length <= len(body):
            raise BadInput(
                f"the infer response's Inference-Header-Content-Length is {header_length} "
                f"but its body has {len(body)} bytes."
            )
        body, binary = body[:header_length], memoryview(body)[header_length:]
    try:
        doc = json.loads(bytes(body))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"the infer response is not valid JSON: {exc}.") from None
    if not isinstance(doc, dict):
        raise BadInput("the infer response is not a JSON object.")
    entries = doc.get("outputs")
    if not isinstance(entries, list):
        raise BadInput("the infer response has no 'outputs' list.", hint=_HINT)
    outputs: dict[str, np.ndarray] = {}
    offset = 0
    for entry in entries:
        try:  # the shared helpers call every tensor an input; in a response they are outputs
            name, array, used = _parse_input(entry, binary, offset)
        except BadInput as exc:
            raise BadInput("the infer response: " + exc.message.replace("input ", "output ", 1)) from None
        outputs[name] = array if array.flags.writeable else array.copy()
        offset += used
    if offset != len(binary):
        raise BadInput(f"the infer response has {len(binary) - offset} bytes after its last binary tensor.")
    model_name, model_version, request_id = doc.get("model_name"), doc.get("model_version"), doc.get("id")
    parameters = doc.get("parameters")
    return InferResponse(
        str(model_name or ""),
        "" if model_version is None else str(model_version),
        outputs,
        None if request_id is None else str(request_id),
        parameters if isinstance(parameters, dict) else {},
    )
