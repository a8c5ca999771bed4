from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from lanai.errors import BadInput
from lanai.protocol.infer import encode_infer_response, parse_infer_request, parse_raw_request
from lanai.types import InferResponse, TensorSpec


def body(doc: dict) -> bytes:
    return json.dumps(doc).encode()


def test_json_tensors_flat_and_nested() -> None:
    doc = {"id": "42", "inputs": [
        {"name": "a", "shape": [2, 2], "datatype": "INT32", "data": [1, 2, 3, 4]},
        {"name": "b", "shape": [1, 3], "datatype": "FP32", "data": [[0.5, 1.5, 2.5]]},
        {"name": "c", "shape": [2], "datatype": "BYTES", "data": ["hé", "x"]},
        {"name": "d", "shape": [2], "datatype": "BOOL", "data": [True, False]},
    ], "outputs": [{"name": "y", "parameters": {"binary_data": True}}]}  # fmt: skip
    request, binary, all_binary = parse_infer_request(body(doc), None)
    assert request.id == "42" and request.outputs == ["y"] and binary == {"y"} and not all_binary
    np.testing.assert_array_equal(request.inputs["a"], [[1, 2], [3, 4]])
    assert request.inputs["a"].dtype == np.int32
    assert request.inputs["b"].dtype == np.float32 and request.inputs["b"].shape == (1, 3)
    assert list(request.inputs["c"]) == ["hé".encode(), b"x"]
    assert request.inputs["d"].dtype == np.bool_


def test_binary_tensors_follow_the_json_header() -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    strings = b"".join(struct.pack("<I", len(s)) + s for s in (b"ab", b""))
    header = body({"inputs": [
        {"name": "x", "shape": [2, 3], "datatype": "FP32", "parameters": {"binary_data_size": x.nbytes}},
        {"name": "s", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": len(strings)}},
    ], "parameters": {"binary_data_output": True}})  # fmt: skip
    request, _, all_binary = parse_infer_request(header + x.tobytes() + strings, len(header))
    np.testing.assert_array_equal(request.inputs["x"], x)
    assert list(request.inputs["s"]) == [b"ab", b""] and all_binary


def test_raw_body_is_the_single_input() -> None:
    spec = TensorSpec("input", "UINT8", (-1, 2, 2))
    request = parse_raw_request(bytes([1, 2, 3, 4]), spec)
    assert request.inputs["input"].shape == (1, 2, 2)
    with pytest.raises(BadInput, match="needs 4"):
        parse_raw_request(b"\x01", spec)
    with pytest.raises(BadInput, match="variable shape"):
        parse_raw_request(b"\x01", TensorSpec("input", "UINT8", (-1, -1)))


@pytest.mark.parametrize(
    ("raw", "header_length", "message"),
    [
        (b"{not json", None, "not valid JSON"),
        (b"[1, 2]", None, "JSON object"),
        (b"{}", None, "no 'inputs'"),
        (body({"inputs": [{"name": "x", "shape": [2], "datatype": "FP99", "data": [1, 2]}]}), None, "datatype"),
        (body({"inputs": [{"name": "x", "shape": [-1], "datatype": "FP32", "data": [1]}]}), None, "shape"),
        (body({"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [1, 2]}]}), None, "needs 3"),
        (body({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": ["a"]}]}), None, "does not fit"),
        (body({"inputs": [{"name": "x", "shape": [1], "datatype": "INT8", "data": [1000]}]}), None, "does not fit"),
        (body({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32"}]}), None, "neither 'data'"),
        (body({"inputs": [{"shape": [1], "datatype": "FP32", "data": [1]}]}), None, "no 'name'"),
        (body({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}] * 2}), None, "twice"),
        (b'{"inputs": []}', 999, "Inference-Header-Content-Length"),
        (body({"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 8}}]})
         + b"\0" * 4, 83, "remain"),
    ],
)  # fmt: skip
def test_malformed_requests_say_what_is_wrong(raw: bytes, header_length: int | None, message: str) -> None:
    if header_length == 83:
        header_length = raw.index(b"\0")
    with pytest.raises(BadInput, match=message):
        parse_infer_request(raw, header_length)


def test_trailing_bytes_are_refused() -> None:
    header = body({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "parameters": {"binary_data_size": 4}}]})
    with pytest.raises(BadInput, match="after the last"):
        parse_infer_request(header + b"\0" * 8, len(header))


def test_response_json_and_binary() -> None:
    y = np.array([[1.5, 2.5]], dtype=np.float32)
    response = InferResponse("m", "3", {"y": y, "z": np.array([7], dtype=np.int64)}, id="9")
    payload, length = encode_infer_response(response, set(), False)
    assert length is None
    doc = json.loads(payload)
    assert doc["model_version"] == "3" and doc["id"] == "9"
    assert doc["outputs"][0] == {"name": "y", "datatype": "FP32", "shape": [1, 2], "data": [1.5, 2.5]}
    payload, length = encode_infer_response(response, {"y"}, False)
    header = json.loads(payload[:length])
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 8}
    np.testing.assert_array_equal(np.frombuffer(payload[length:], dtype=np.float32), [1.5, 2.5])
