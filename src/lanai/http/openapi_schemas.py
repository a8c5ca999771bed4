"""The JSON Schemas of the HTTP bodies that are not wire values (see ``protocol.wire``).

Wire values describe themselves (the OpenAI-compatible requests among them: ``protocol.openai``); what
is left here is the Open Inference Protocol's inference bodies (parsed by ``protocol.infer``: tensors
with the binary extension), the image upload form and the two error bodies. A test validates served bodies against them.
"""

from __future__ import annotations

from typing import Any

from lanai.types import DATATYPES

__all__ = ["SCHEMAS", "ref"]

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def string(description: str = "", **extra: Any) -> Schema:
    return _described({"type": "string", **extra}, description)


def integer(description: str = "", **extra: Any) -> Schema:
    return _described({"type": "integer", "format": "int64", **extra}, description)


def number(description: str = "", **extra: Any) -> Schema:
    return _described({"type": "number", "format": "double", **extra}, description)


def boolean(description: str = "") -> Schema:
    return _described({"type": "boolean"}, description)


def array(items: Schema, description: str = "", **extra: Any) -> Schema:
    return _described({"type": "array", "items": items, **extra}, description)


def nullable(schema: Schema) -> Schema:
    """``schema`` that may also be ``null`` (OpenAPI 3.1: a type list)."""
    return {**schema, "type": [schema["type"], "null"]}


def obj(description: str, properties: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    schema = _described({"type": "object", "properties": properties}, description)
    if required:
        schema["required"] = list(required)
    return schema


def _described(schema: Schema, description: str) -> Schema:
    return {**schema, "description": description} if description else schema


_SHAPE = array(integer(), "Dimensions, the batch axis first.")
_PARAMETER_VALUE = ref("ParameterValue")
_TENSOR_DATA = ref("TensorData")

_V2 = {
    "ParameterValue": {
        "description": "A parameter's value: a string, a number or a boolean.",
        "oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}],
    },
    "TensorData": array(
        {},
        "A tensor's elements in row-major order, flat (or nested as its shape): numbers, booleans for BOOL, "
        "strings for BYTES.",
    ),
    "Datatype": string("An Open Inference Protocol tensor datatype.", enum=list(DATATYPES)),
    "InferParameters": {
        "type": "object",
        "description": "Free-form parameters; values are strings, numbers or booleans.",
        "properties": {"binary_data_output": boolean("Return every output as binary (binary tensor extension).")},
        "additionalProperties": _PARAMETER_VALUE,
    },
    "TensorParameters": {
        "type": "object",
        "description": "Per-tensor parameters of the binary tensor extension.",
        "properties": {
            "binary_data_size": integer("Bytes of this tensor after the JSON header; it then has no data.", minimum=0),
        },
        "additionalProperties": _PARAMETER_VALUE,
    },
    "RequestInput": obj(
        "One input tensor: inline JSON data, or binary_data_size bytes after the JSON header.",
        {
            "name": string(),
            "shape": array(integer(minimum=0), "Dimensions, the batch axis first."),
            "datatype": ref("Datatype"),
            "parameters": ref("TensorParameters"),
            "data": _TENSOR_DATA,
        },
        ("name", "shape", "datatype"),
    ),
    "RequestOutputParameters": {
        "type": "object",
        "properties": {"binary_data": boolean("Return this output as binary (binary tensor extension).")},
        "additionalProperties": _PARAMETER_VALUE,
    },
    "RequestOutput": obj(
        "An output to return.", {"name": string(), "parameters": ref("RequestOutputParameters")}, ("name",)
    ),
    "InferRequest": obj(
        "An Open Inference Protocol inference request.",
        {
            "id": string("Echoed in the response."),
            "parameters": ref("InferParameters"),
            "inputs": array(ref("RequestInput"), minItems=1),
            "outputs": array(ref("RequestOutput"), "The outputs to return; omitted: all of them."),
        },
        ("inputs",),
    ),
    "ResponseOutput": obj(
        "One output tensor: JSON data, or binary_data_size bytes after the JSON header (FP16 is always binary).",
        {
            "name": string(),
            "shape": _SHAPE,
            "datatype": ref("Datatype"),
            "parameters": ref("TensorParameters"),
            "data": _TENSOR_DATA,
        },
        ("name", "shape", "datatype"),
    ),
    "InferResponse": obj(
        "An Open Inference Protocol inference response.",
        {
            "model_name": string(),
            "model_version": string(),
            "id": string("The request's id, when it had one."),
            "parameters": ref("InferParameters"),
            "outputs": array(ref("ResponseOutput")),
        },
        ("model_name", "model_version", "outputs"),
    ),
}

_UPLOADS = {
    "ImageUpload": obj(
        "An image as a form field (multipart/form-data).",
        {"file": string("The image: JPEG, PNG, WebP, …", format="binary")},
        ("file",),
    ),
    "TextInput": obj(
        "A text for a text task (classify-text, embed).",
        {"text": string("The text, UTF-8.", examples=["Invoice 4411: amount due EUR 1,250.00."])},
        ("text",),
    ),
}

_ERRORS = {
    "Error": obj(
        "What went wrong, and usually a 'Hint: …' saying what to do.",
        {"error": string(examples=["no model named 'x' is loaded. Hint: loaded models: tiny."])},
        ("error",),
    ),
}

_OPENAI = {
    "OpenAIError": obj("OpenAI's error shape.", {"error": ref("OpenAIErrorDetail")}, ("error",)),
    "OpenAIErrorDetail": obj(
        "What went wrong, and usually a 'Hint: …' saying what to do.",
        {"message": string(), "type": string("invalid_request_error, not_found_error or server_error."),
         "param": nullable(string("The request field at fault.")), "code": nullable(string())},
        ("message", "type"),
    ),
}  # fmt: skip

SCHEMAS: dict[str, Schema] = {**_V2, **_UPLOADS, **_ERRORS, **_OPENAI}
