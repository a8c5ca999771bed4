"""The JSON Schemas of the HTTP bodies that are not wire values (see ``protocol.wire``).

Wire values describe themselves; what is left here is the Open Inference Protocol's inference bodies
(parsed by ``protocol.infer``: free-form tensors with the binary extension), the error body, and the
OpenAI-compatible bodies (parsed in ``http/openai.py``). A test validates served bodies against them.
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
_PARAMETER_VALUE = {"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]}
_TENSOR_DATA = array(
    {},
    "The elements, flat or nested, in row-major order: numbers, booleans for BOOL, strings for BYTES.",
)

_V2 = {
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

_ERRORS = {
    "Error": obj(
        "What went wrong, and usually a 'Hint: …' saying what to do.",
        {"error": string(examples=["no model named 'x' is loaded. Hint: loaded models: tiny."])},
        ("error",),
    ),
}

_SAMPLING = {
    "model": string("A loaded language model."),
    "max_tokens": integer("Tokens to generate at most (default: until the model stops or the context is full).",
                          minimum=1),
    "max_completion_tokens": integer("Same as max_tokens.", minimum=1),
    "temperature": number("0: always the likeliest token.", minimum=0, maximum=2, default=1),
    "top_p": number(minimum=0, maximum=1, default=1),
    "stop": {"oneOf": [string(), array(string(), maxItems=4)], "description": "Text that ends the answer."},
    "seed": integer("Same seed, same prompt, same settings: same answer."),
    "stream": boolean("Answer as server-sent events, ending with data: [DONE]."),
    "stream_options": obj("", {"include_usage": boolean("A last event with the token counts.")}),
}  # fmt: skip
_OPENAI = {
    "OpenAIError": obj(
        "OpenAI's error shape.",
        {"error": obj("", {"message": string(), "type": string(), "param": nullable(string()),
                           "code": nullable(string())}, ("message", "type"))},
        ("error",),
    ),
    "ChatCompletionRequest": obj("", {
        **_SAMPLING,
        "messages": array(obj("", {"role": string(enum=["system", "user", "assistant", "tool", "developer"]),
                                   "content": {"oneOf": [string(), array(obj("A text part.", {
                                       "type": string(enum=["text"]), "text": string()}, ("type", "text")))]}},
                              ("role",)), minItems=1),
    }, ("model", "messages")),
    "CompletionRequest": obj("", {**_SAMPLING, "prompt": string("The text to continue.")}, ("model", "prompt")),
    "EmbeddingRequest": obj("", {
        "model": string("A model added with --task embed."),
        "input": {"oneOf": [string(), array(string(), minItems=1)]},
        "encoding_format": string("base64: little-endian float32 bytes.", enum=["float", "base64"], default="float"),
    }, ("model", "input")),
}  # fmt: skip

SCHEMAS: dict[str, Schema] = {**_V2, **_ERRORS, **_OPENAI}
