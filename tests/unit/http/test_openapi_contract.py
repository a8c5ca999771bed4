"""The OpenAPI document as a client generator reads it: operation ids, typed bodies, errors and security
that match what the door enforces (``http.auth.access_of``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate
from starlette.routing import Route

from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.http.app import create_app
from lanai.http.auth import access_of
from lanai.http.openapi import openapi_document
from lanai.security.guard import Access
from lanai.store import Store

ANY_CREDENTIAL = [{"bearer": []}, {"apiKey": []}, {"mutualTLS": []}]
IMAGE = {"type": "image", "source": {}}  # an Anthropic image block: lanai's language models read text
ERROR_SCHEMAS = {
    "#/components/schemas/Error",
    "#/components/schemas/OpenAIError",
    "#/components/schemas/AnthropicError",
    "#/components/schemas/DeepStackError",
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi_document()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in document["paths"].items() for method, op in item.items()]


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def validator(document: dict[str, Any], name: str) -> OAS31Validator:
    return OAS31Validator({"$ref": f"#/components/schemas/{name}", "components": document["components"]})


def test_the_served_document_is_valid(tmp_path: Path) -> None:
    import asyncio

    import httpx

    async def fetch() -> httpx.Response:
        app = create_app(DataPlane(Store(tmp_path), Settings(home=tmp_path, intra_op_threads=1)))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://lanai.test") as client:
            return await client.get("/openapi.json")

    served = asyncio.run(fetch())
    assert served.status_code == 200 and served.headers["content-type"] == "application/json"
    validate(served.json())


def test_every_route_of_the_app_has_an_operation_id(tmp_path: Path, document: dict[str, Any]) -> None:
    app = create_app(DataPlane(Store(tmp_path), Settings(home=tmp_path, intra_op_threads=1)))
    for route in app.routes:
        assert isinstance(route, Route)
        for method in (route.methods or set()) - {"HEAD"}:
            operation = document["paths"].get(route.path, {}).get(method.lower())
            assert operation is not None, f"{method} {route.path} is not in the OpenAPI document"
            assert operation["operationId"], f"{method} {route.path} has no operationId"


def test_security_is_what_the_door_enforces(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["apiKey"] == {**schemes["apiKey"], "type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["mutualTLS"]["type"] == "mutualTLS"
    assert document["security"] == [{}, *ANY_CREDENTIAL]  # inference: a credential, or none unless required
    seen = set()
    for path, method, op in operations(document):
        access = access_of(method.upper(), path)
        seen.add(access)
        effective = op.get("security", document["security"])
        expected = {Access.PUBLIC: [], Access.INFER: [{}, *ANY_CREDENTIAL], Access.ADMIN: ANY_CREDENTIAL}[access]
        assert effective == expected, (method, path, access)
        refusals = {"401", "403"} | ({"429"} if access is not Access.PUBLIC else set())
        assert refusals <= set(op["responses"]), (method, path)
    assert seen == {Access.PUBLIC, Access.INFER, Access.ADMIN}
    public = {(path, method) for path, method, op in operations(document) if op.get("security") == []}
    assert {("/health", "get"), ("/v2/health/live", "get"), ("/v2/health/ready", "get")} <= public


def test_every_body_has_a_named_schema(document: dict[str, Any]) -> None:
    def named(schema: dict[str, Any]) -> bool:
        if schema.get("type") == "array":
            return named(schema["items"])
        return "$ref" in schema

    for path, method, op in operations(document):
        if path == "/openapi.json":
            continue  # the document itself: an object, described by the OpenAPI specification
        bodies = []
        if "requestBody" in op:
            bodies.append(("request", op["requestBody"]["content"]))
        for status, response in op["responses"].items():
            bodies.append((status, resolve(document, response).get("content", {})))
        for where, content in bodies:
            for media_type, media in content.items():
                schema = media["schema"]
                if media_type in ("application/json", "multipart/form-data"):
                    assert named(schema), (method, path, where, media_type)
                elif media_type == "application/octet-stream" or media_type.startswith("image/"):
                    assert schema == {"type": "string", "format": "binary"}, (method, path, where, media_type)
                else:
                    streams = ("text/event-stream", "application/x-ndjson")  # Ollama's routes stream NDJSON
                    assert media_type in ("text/plain", "text/html", *streams), (method, path, media_type)
                    assert schema["type"] == "string"


def test_error_responses_carry_an_error_body(document: dict[str, Any]) -> None:
    health_checks = {("/health", "get"), ("/health/ready", "get"), ("/v2/health/ready", "get")}  # 503: the health
    for path, method, op in operations(document):
        for status, response in op["responses"].items():
            if int(status) < 400 or ((path, method) in health_checks and status == "503"):
                continue
            schema = resolve(document, response)["content"]["application/json"]["schema"]
            assert schema.get("$ref") in ERROR_SCHEMAS, (method, path, status)


def test_multipart_and_raw_image_bodies(document: dict[str, Any]) -> None:
    upload = document["components"]["schemas"]["ImageUpload"]
    assert upload["required"] == ["file"] and upload["properties"]["file"]["format"] == "binary"
    for path in ("/v1/models/{model}/classify", "/v1/infer", "/predict", "/v1/pipelines/{pipeline}"):
        body = document["paths"][path]["post"]["requestBody"]
        assert body["required"] is True
        assert list(body["content"]) == ["multipart/form-data", "image/*", "application/octet-stream"]
        assert body["content"]["multipart/form-data"]["encoding"]["file"]["contentType"].startswith("image/*")


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("ChatCompletionRequest", {"model": "smollm2", "messages": [{"role": "user", "content": "Hi"}]}),
        ("ChatCompletionRequest", {
            "model": "m", "messages": [{"role": "system", "content": None},
                                       {"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
            "max_tokens": 8, "temperature": 0, "top_p": 0.5, "stop": ["\n"], "seed": 3, "n": 1, "stream": True,
            "stream_options": {"include_usage": True}, "user": "extra keys are allowed",
        }),
        ("CompletionRequest", {"model": "m", "prompt": "Once", "stop": "."}),
        ("CompletionRequest", {"model": "m", "prompt": ["Once"], "max_completion_tokens": 4}),
        ("EmbeddingRequest", {"model": "e", "input": ["a", "b"], "encoding_format": "base64"}),
        ("MessagesRequest", {
            "model": "m", "max_tokens": 8, "system": [{"type": "text", "text": "Be brief."}], "stream": True,
            "messages": [{"role": "user", "content": "Hi"},
                         {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
                         {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]}],
            "tools": [{"name": "f", "input_schema": {"type": "object"}}], "tool_choice": {"type": "tool", "name": "f"},
            "stop_sequences": ["\n"], "temperature": 0, "metadata": {"user_id": "u"},
        }),
        ("InferRequest", {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [0.5, 1]}],
                          "parameters": {"binary_data_output": False, "priority": 2}}),
    ],
)  # fmt: skip
def test_request_schemas_take_what_the_handlers_take(document: dict[str, Any], name: str, body: Any) -> None:
    validator(document, name).validate(body)


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("ChatCompletionRequest", {"model": "m", "messages": []}),
        ("ChatCompletionRequest", {"model": "m", "messages": [{"role": "robot", "content": "x"}]}),
        ("ChatCompletionRequest", {"model": "m", "messages": [{"role": "user"}], "n": 17}),
        ("ChatCompletionRequest", {"model": "m", "messages": [{"role": "user"}], "temperature": 3}),
        ("CompletionRequest", {"model": "m"}),
        ("EmbeddingRequest", {"model": "e", "input": "a", "encoding_format": None}),
        ("MessagesRequest", {"model": "m", "messages": [{"role": "user", "content": "x"}]}),  # no max_tokens
        ("MessagesRequest", {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": [IMAGE]}]}),
        ("InferRequest", {"inputs": [{"name": "x", "shape": [1], "datatype": "FP128"}]}),
    ],
)
def test_request_schemas_refuse_what_the_handlers_refuse(document: dict[str, Any], name: str, body: Any) -> None:
    assert not validator(document, name).is_valid(body), json.dumps(body)
