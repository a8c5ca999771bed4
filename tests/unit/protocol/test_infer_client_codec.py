"""The client's direction of the Open Inference Protocol codec, checked against the server's direction:
what ``encode_infer_request`` writes, ``parse_infer_request`` reads back unchanged, and what
``encode_infer_response`` writes, ``parse_infer_response`` reads back unchanged."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lanai.errors import BadInput
from lanai.protocol.infer import (
    encode_infer_request,
    encode_infer_response,
    parse_infer_request,
    parse_infer_response,
)
from lanai.types import InferResponse

TENSORS = {
    "f32": np.arange(6, dtype=np.float32).reshape(2, 3) / 7,
    "f16": np.array([[0.5, -1.25]], dtype=np.float16),
    "f64": np.array([1e-300, 2.5]),
    "i64": np.array([[-(2**40), 3]], dtype=np.int64),
    "u8": np.arange(4, dtype=np.uint8).reshape(1, 2, 2),
    "i8": np.array([-128, 127], dtype=np.int8),
    "bool": np.array([True, False, True]),
    "bytes": np.array([b"ab", b"", "hé".encode()], dtype=object),
    "empty": np.zeros((0, 3), dtype=np.float32),
}


def assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert list(got) == list(want)
    for name, array in want.items():
        assert got[name].dtype == array.dtype, name
        assert got[name].shape == array.shape, name
        np.testing.assert_array_equal(got[name], array)


@pytest.mark.parametrize("binary", [True, False])
def test_a_request_round_trips_through_the_servers_parser(binary: bool) -> None:
    body, header_length = encode_infer_request(TENSORS, ["y", "z"], binary=binary, request_id="7")
    request, binary_outputs, all_binary = parse_infer_request(body, header_length)
    assert_same(request.inputs, TENSORS)
    assert request.id == "7" and request.outputs == ["y", "z"]
    assert binary_outputs == ({"y", "z"} if binary else set()) and not all_binary


def test_binary_is_the_default_and_asks_for_binary_outputs() -> None:
    body, header_length = encode_infer_request({"x": TENSORS["f32"]})
    assert header_length is not None and len(body) == header_length + TENSORS["f32"].nbytes
    header = json.loads(body[:header_length])
    assert header["parameters"] == {"binary_data_output": True} and "outputs" not in header
    assert header["inputs"][0]["parameters"] == {"binary_data_size": 24}
    _, _, all_binary = parse_infer_request(body, header_length)
    assert all_binary


def test_json_only_has_no_header_length_and_asks_for_nothing() -> None:
    body, header_length = encode_infer_request({"x": np.array([1, 2], dtype=np.int32)}, binary=False)
    assert header_length is None
    assert json.loads(body) == {"inputs": [{"name": "x", "datatype": "INT32", "shape": [2], "data": [1, 2]}]}


def test_str_arrays_travel_as_bytes() -> None:
    body, header_length = encode_infer_request({"s": np.array(["a", "bé"])})
    request, _, _ = parse_infer_request(body, header_length)
    assert list(request.inputs["s"]) == [b"a", "bé".encode()]


def test_refuses_what_the_protocol_cannot_carry() -> None:
    with pytest.raises(BadInput, match="complex"):
        encode_infer_request({"c": np.array([1j])})
    with pytest.raises(BadInput, match="at least one input"):
        encode_infer_request({})


@pytest.mark.parametrize("binary", [True, False])
def test_a_response_round_trips_from_the_servers_encoder(binary: bool) -> None:
    outputs = dict(TENSORS)
    response = InferResponse("m", "3", outputs, id="42")
    body, header_length = encode_infer_response(response, set(), all_binary=binary)
    parsed = parse_infer_response(body, header_length)
    assert (parsed.model_name, parsed.model_version, parsed.id) == ("m", "3", "42")
    assert_same(parsed.outputs, outputs)
    assert all(a.flags.writeable for a in parsed.outputs.values())


def test_some_outputs_binary_others_json() -> None:
    response = InferResponse("m", "1", {"a": TENSORS["f32"], "b": TENSORS["i64"]})
    body, header_length = encode_infer_response(response, {"b"}, all_binary=False)
    assert header_length is not None
    assert_same(parse_infer_response(body, header_length).outputs, response.outputs)


def test_malformed_responses_say_what_is_wrong() -> None:
    response = InferResponse("m", "1", {"y": TENSORS["f32"]})
    body, header_length = encode_infer_response(response, set(), all_binary=True)
    assert header_length is not None
    with pytest.raises(BadInput, match="output 'y'"):
        parse_infer_response(body[:-4], header_length)
    with pytest.raises(BadInput, match="after its last binary tensor"):
        parse_infer_response(body + b"xx", header_length)
    with pytest.raises(BadInput, match="Inference-Header-Content-Length"):
        parse_infer_response(body, len(body) + 1)
    with pytest.raises(BadInput, match="not valid JSON"):
        parse_infer_response(b"<html>", None)
    with pytest.raises(BadInput, match="'outputs'"):
        parse_infer_response(b'{"model_name": "m"}', None)
