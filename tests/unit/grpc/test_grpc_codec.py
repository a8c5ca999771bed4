"""The gRPC codec against tritonclient's own encoding (its request builder, its response reader) and
against typed contents as KServe-style clients send them."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.grpc import _utils as triton_utils
from tritonclient.grpc import service_pb2 as triton_pb

from lanai.errors import BadInput
from lanai.grpc import codec
from lanai.grpc import inference_pb2 as pb
from lanai.protocol.v2 import ModelMetadata, ModelParameters, RepositoryEntry, ServerMetadata
from lanai.types import DATATYPES, InferResponse, TensorSpec, datatype_of

SAMPLES: dict[str, np.ndarray] = {
    "BOOL": np.array([[True, False, True]]),
    "UINT8": np.array([[0, 7, 255]], dtype=np.uint8),
    "UINT16": np.array([[0, 7, 65535]], dtype=np.uint16),
    "UINT32": np.array([[0, 7, 2**32 - 1]], dtype=np.uint32),
    "UINT64": np.array([[0, 7, 2**64 - 1]], dtype=np.uint64),
    "INT8": np.array([[-128, 0, 127]], dtype=np.int8),
    "INT16": np.array([[-32768, 0, 32767]], dtype=np.int16),
    "INT32": np.array([[-(2**31), 0, 2**31 - 1]], dtype=np.int32),
    "INT64": np.array([[-(2**63), 0, 2**63 - 1]], dtype=np.int64),
    "FP16": np.array([[-1.5, 0.0, 65504.0]], dtype=np.float16),
    "FP32": np.array([[-1.5, 0.25, 3.4e38]], dtype=np.float32),
    "FP64": np.array([[-1.5, 0.25, 1e300]], dtype=np.float64),
    "BYTES": np.array([[b"", "hé".encode(), b"\x00\xff"]], dtype=object),
}


def triton_request(inputs: dict[str, np.ndarray], outputs: list[str] | None = None) -> pb.ModelInferRequest:
    """The request tritonclient.grpc builds for ``inputs``, read back as lanai's message (over the wire format)."""
    infer_inputs = []
    for name, array in inputs.items():
        infer_input = triton.InferInput(name, list(array.shape), datatype_of(array.dtype))
        infer_input.set_data_from_numpy(array)
        infer_inputs.append(infer_input)
    wanted = [triton.InferRequestedOutput(o) for o in outputs] if outputs else None
    message = triton_utils._get_inference_request(
        "m", infer_inputs, "", "req-1", wanted, 0, False, False, 0, None, {"flag": True}
    )
    return pb.ModelInferRequest.FromString(message.SerializeToString())


def triton_result(message: pb.ModelInferResponse) -> triton.InferResult:
    return triton.InferResult(triton_pb.ModelInferResponse.FromString(message.SerializeToString()))


def test_every_datatype_from_tritonclient_raw_contents() -> None:
    request, raw = codec.parse_infer_request(triton_request({f"in_{d}": a for d, a in SAMPLES.items()}, ["y"]))
    assert raw and request.id == "req-1" and request.outputs == ["y"] and request.parameters == {"flag": True}
    for datatype, expected in SAMPLES.items():
        got = request.inputs[f"in_{datatype}"]
        assert got.dtype == DATATYPES[datatype] and got.shape == expected.shape, datatype
        assert got.tolist() == expected.tolist(), datatype


def test_every_datatype_to_tritonclient_raw_contents() -> None:
    response = InferResponse("m", "3", {f"out_{d}": a for d, a in SAMPLES.items()}, "req-1", {"n": 2**63})
    message = codec.encode_infer_response(response, raw=True)
    assert len(message.raw_output_contents) == len(SAMPLES)
    assert message.parameters["n"].WhichOneof("parameter_choice") == "uint64_param"
    result = triton_result(message)
    assert result.get_response().model_version == "3" and result.get_response().id == "req-1"
    for datatype, expected in SAMPLES.items():
        got = result.as_numpy(f"out_{datatype}")
        assert got.tolist() == expected.tolist(), datatype


@pytest.mark.parametrize("datatype", [d for d in SAMPLES if d != "FP16"])
def test_typed_contents_round_trip(datatype: str) -> None:
    expected = SAMPLES[datatype]
    response = codec.encode_infer_response(InferResponse("m", "1", {"x": expected}), raw=False)
    assert not response.raw_output_contents
    tensor = response.outputs[0]
    assert tensor.datatype == datatype and list(tensor.shape) == [1, 3]
    assert [f.name for f, _ in tensor.contents.ListFields()] == [codec.CONTENTS_FIELDS[datatype]]
    # the same contents, sent back as a request's input
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="x", datatype=datatype, shape=[1, 3]).contents.CopyFrom(tensor.contents)
    parsed, raw = codec.parse_infer_request(request)
    assert not raw and parsed.inputs["x"].dtype == DATATYPES[datatype]
    assert parsed.inputs["x"].tolist() == expected.tolist()


def test_an_fp16_output_makes_the_whole_response_raw() -> None:
    outputs = {"a": np.ones((1, 2), np.float32), "half": np.ones((1, 2), np.float16)}
    message = codec.encode_infer_response(InferResponse("m", "1", outputs), raw=False)
    assert len(message.raw_output_contents) == 2 and not message.outputs[0].HasField("contents")
    assert triton_result(message).as_numpy("half").dtype == np.float16


def test_strings_become_bytes_and_empty_ids_stay_empty() -> None:
    outputs = {"labels": np.array(["cat", "dog"])}
    message = codec.encode_infer_response(InferResponse("m", "1", outputs), raw=False)
    assert list(message.outputs[0].contents.bytes_contents) == [b"cat", b"dog"] and message.id == ""
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="x", datatype="INT32", shape=[1]).contents.int_contents.append(1)
    assert codec.parse_infer_request(request)[0].id is None


def typed(datatype: str, shape: list[int], **contents: list) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="x", datatype=datatype, shape=shape, contents=pb.InferTensorContents(**contents))
    return request


def raw_request(datatype: str, shape: list[int], *blobs: bytes, inputs: int = 1) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="m", raw_input_contents=list(blobs))
    for i in range(inputs):
        request.inputs.add(name=f"x{i}" if i else "x", datatype=datatype, shape=shape)
    return request


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (pb.ModelInferRequest(model_name="m"), "the request has no inputs"),
        (typed("FP16", [1], fp32_contents=[1.0]), "FP16, which has no typed contents. Hint: send FP16 as raw"),
        (typed("BF16", [1]), "datatype 'BF16'. Hint: use one of BOOL"),
        (typed("FP32", [2], fp32_contents=[1.0]), "has 1 values in fp32_contents but shape [2] needs 2"),
        (typed("FP32", [1], int_contents=[1]), "is FP32 but its values are in int_contents. Hint: FP32 values go"),
        (typed("INT8", [2], int_contents=[1, 300]), "300 does not fit INT8 (-128..127)"),
        (typed("UINT16", [1], uint_contents=[70000]), "70000 does not fit UINT16"),
        (typed("FP32", [-1, 3]), "has shape [-1, 3]. Hint: a request's shape has no -1"),
        (typed("FP32", [0]), None),
        (raw_request("FP32", [2], b"\0" * 4), "has 4 bytes but shape [2] of FP32 needs 8"),
        (raw_request("FP32", [1], b"\0" * 4, inputs=2), "has 2 inputs but 1 raw_input_contents"),
        (raw_request("BYTES", [2], b"\x01\0\0\0a"), "has 1 BYTES elements, its shape needs 2"),
        (raw_request("BYTES", [1], b"\x09\0\0\0a"), "claims 9 bytes past the end"),
    ],
)
def test_malformed_requests_say_what_is_wrong(request_: pb.ModelInferRequest, message: str | None) -> None:
    if message is None:
        assert codec.parse_infer_request(request_)[0].inputs["x"].shape == (0,)
        return
    with pytest.raises(BadInput) as caught:
        codec.parse_infer_request(request_)
    assert message in str(caught.value)


def test_names_duplicates_and_mixed_contents_are_refused() -> None:
    nameless = typed("FP32", [1], fp32_contents=[1.0])
    nameless.inputs[0].name = ""
    twice = typed("FP32", [1], fp32_contents=[1.0])
    twice.inputs.append(twice.inputs[0])
    mixed = raw_request("FP32", [1], b"\0" * 4)
    mixed.inputs[0].contents.fp32_contents.append(1.0)
    no_output_name = typed("FP32", [1], fp32_contents=[1.0])
    no_output_name.outputs.add(name="")
    classification = triton_request({"x": np.zeros((1, 3), np.float32)})
    classification.outputs.add(name="y").parameters["classification"].int64_param = 3
    for request, message in [
        (nameless, "input 0 has no name"),
        (twice, "input 'x' is given twice"),
        (mixed, "has typed contents in a request with raw_input_contents"),
        (no_output_name, "a requested output has no name"),
        (classification, "output 'y' asks for Triton's classification extension"),
    ]:
        with pytest.raises(BadInput, match=message):
            codec.parse_infer_request(request)


def test_parameters_both_ways() -> None:
    message = pb.ModelInferResponse()
    values = {"b": True, "i": -3, "u": 2**64 - 1, "f": 0.5, "s": "text", "other": [1]}
    codec.set_parameters(message.parameters, values)
    assert codec.parse_parameters(message.parameters) == {**values, "other": "[1]"}
    message.parameters["unset"].Clear()
    assert "unset" not in codec.parse_parameters(message.parameters)


def test_metadata_messages() -> None:
    server = codec.server_metadata_message(ServerMetadata("lanai", "1.0", ("model_repository",)))
    assert (server.name, server.version, list(server.extensions)) == ("lanai", "1.0", ["model_repository"])
    spec = TensorSpec("input", "FP32", (-1, 3, 224, 224))
    metadata = ModelMetadata(
        "m", ("2",), "onnx_onnxv1", (spec,), (TensorSpec("logits", "FP32", (-1, 1000)),),
        ModelParameters("classify", "onnx", "cpu", 8),
    )  # fmt: skip
    model = codec.model_metadata_message(metadata)
    assert list(model.versions) == ["2"] and model.platform == "onnx_onnxv1"
    assert (model.inputs[0].name, model.inputs[0].datatype, list(model.inputs[0].shape)) == (
        "input", "FP32", [-1, 3, 224, 224],
    )  # fmt: skip
    index = codec.repository_index_message(
        [RepositoryEntry("a", "1", "READY", ""), RepositoryEntry("b", "", "UNAVAILABLE", "not loaded")]
    )
    assert [(m.name, m.version, m.state, m.reason) for m in index.models] == [
        ("a", "1", "READY", ""), ("b", "", "UNAVAILABLE", "not loaded"),
    ]  # fmt: skip
