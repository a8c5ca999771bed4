"""The OpenAPI document: valid 3.1, in step with the app's routes, and true to what the handlers send."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate
from starlette.routing import Route

import lanai
from lanai.bundled import inspector
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.http.app import create_app
from lanai.http.openapi import openapi_document
from lanai.store import Store
from lanai.types import ImagePreprocess

TINY = ImagePreprocess(resize=8, crop=8, mean=(0.0,) * 3, std=(255.0,) * 3)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi_document()


def make_host(root: Path, model_files: dict[str, Path] | None = None) -> DataPlane:
    store = Store(root)
    if model_files is not None:
        store.add(
            model_files["tiny"], name="tiny", task="classify", labels=model_files["labels"], preprocess=TINY,
            inspect=inspector("onnx"),
        )  # fmt: skip
    return DataPlane(store, Settings(home=root, intra_op_threads=1))


Call = tuple[str, str, dict[str, Any]]


def call(method: str, url: str, **kwargs: Any) -> Call:
    return method, url, kwargs


def exchange(host: DataPlane, *calls: Call, start: bool = False) -> list[httpx.Response]:
    """Send ``calls`` in turn to the app over ``host`` (started first if ``start``), in process."""

    async def main() -> list[httpx.Response]:
        if start:
            await host.start()
        transport = httpx.ASGITransport(app=create_app(host))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://lanai.test") as client:
                return [await client.request(method, url, **kwargs) for method, url, kwargs in calls]
        finally:
            await host.shutdown()

    return asyncio.run(main())


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def check(document: dict[str, Any], template: str, response: httpx.Response) -> Any:
    """Assert ``response`` is one the document declares for ``template``; return its JSON body, if any."""
    operation = document["paths"][template][response.request.method.lower()]
    assert str(response.status_code) in operation["responses"], (template, response.status_code, response.text)
    declared = resolve(document, operation["responses"][str(response.status_code)])
    media_type = response.headers["content-type"].split(";")[0]
    assert media_type in declared["content"], (template, media_type)
    for header in declared.get("headers", {}):
        if header != "Inference-Header-Content-Length":  # sent only with binary outputs
            assert header in response.headers, (template, header)
    if media_type != "application/json":
        return None
    schema = {**declared["content"][media_type]["schema"], "components": document["components"]}
    body = response.json()
    OAS31Validator(schema).validate(body)
    return body


def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"].startswith("3.1") and document["info"]["version"] == lanai.__version__


def test_every_route_is_documented_and_every_operation_is_routed(tmp_path: Path, document: dict[str, Any]) -> None:
    app = create_app(make_host(tmp_path))
    routed = {
        (route.path, method.lower())
        for route in app.routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert routed == documented


def test_operations_have_unique_csharp_friendly_ids_and_known_tags(document: dict[str, Any]) -> None:
    operations = [op for item in document["paths"].values() for op in item.values()]
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[A-Z][A-Za-z]+", op_id) for op_id in ids), ids
    tags = {tag["name"] for tag in document["tags"]}
    known = {"tasks", "inference", "openai", "anthropic", "ollama", "repository", "pairing", "health", "operations",
             "admin", "console"}
    assert tags == known
    assert all(len(op["tags"]) == 1 and op["tags"][0] in tags for op in operations)
    assert {"Classify", "ModelInfer", "ServerLive", "ServerReady", "ModelMetadata", "Health"} <= set(ids)


def test_every_component_is_used(document: dict[str, Any]) -> None:
    text = json.dumps({k: v for k, v in document.items() if k != "components"})
    text += json.dumps(document["components"]["schemas"]) + json.dumps(document["components"]["responses"])
    schemes = {name for requirement in document["security"] for name in requirement}
    assert schemes == set(document["components"]["securitySchemes"])
    for kind, entries in document["components"].items():
        if kind == "securitySchemes":
            continue  # referenced by name in "security", checked above
        for name in entries:
            assert f'"#/components/{kind}/{name}"' in text, f"{kind}/{name} is never referenced"


def test_classify_bodies_are_documented(document: dict[str, Any]) -> None:
    classify = document["paths"]["/v1/models/{model}/classify"]["post"]
    content = classify["requestBody"]["content"]
    assert resolve(document, content["multipart/form-data"]["schema"])["properties"]["file"]["format"] == "binary"
    assert {"image/*", "application/octet-stream"} <= set(content)
    assert "top_k" in {resolve(document, p)["name"] for p in classify["parameters"]}
    infer = document["paths"]["/v2/models/{model}/infer"]["post"]
    assert set(infer["requestBody"]["content"]) == {"application/json", "application/octet-stream"}
    assert "Inference-Header-Content-Length" in {resolve(document, p)["name"] for p in infer["parameters"]}


def test_openapi_json_and_docs_answer(tmp_path: Path, document: dict[str, Any]) -> None:
    served, page = exchange(make_host(tmp_path), call("GET", "/openapi.json"), call("GET", "/docs"))
    assert served.status_code == 200 and served.json() == document
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    # Swagger UI from the box itself, over this document; nothing from elsewhere
    assert 'src="/ui/swagger-ui/swagger-ui-bundle.js"' in page.text and "/openapi.json" in page.text
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text)


def test_an_unready_server_answers_as_documented(tmp_path: Path, document: dict[str, Any]) -> None:
    calls = {
        "/health": call("GET", "/health"),
        "/v2/health/ready": call("GET", "/v2/health/ready"),
        "/v2/models/{model}": call("GET", "/v2/models/tiny"),
        "/v2/models/{model}/versions/{version}/infer": call("POST", "/v2/models/tiny/versions/1/infer", json={}),
        "/v1/models/{model}/classify": call("POST", "/v1/models/tiny/classify", content=b"x"),
        "/v2/repository/index": call("POST", "/v2/repository/index"),
    }
    responses = dict(zip(calls, exchange(make_host(tmp_path), *calls.values())))
    bodies = {template: check(document, template, response) for template, response in responses.items()}
    assert bodies["/health"]["status"] == "unavailable" and bodies["/v2/health/ready"] == {"ready": False}
    assert responses["/v2/models/{model}"].status_code == 503
    assert responses["/v1/models/{model}/classify"].status_code == 503
    assert bodies["/v2/repository/index"] == []


def test_served_bodies_match_the_schemas(
    tmp_path: Path, model_files: dict[str, Path], document: dict[str, Any], photos: dict[str, bytes]
) -> None:
    photo = photos["chelsea"]
    pixels = np.zeros(3 * 8 * 8, np.float32).tolist()
    infer = {"id": "7", "inputs": [{"name": "input", "shape": [1, 3, 8, 8], "datatype": "FP32", "data": pixels}]}
    header = json.dumps({**infer, "parameters": {"binary_data_output": True}}).encode()
    binary = {"inference-header-content-length": str(len(header))}
    calls = [
        ("/v2", call("GET", "/v2")),
        ("/v2/health/live", call("GET", "/v2/health/live")),
        ("/v2/health/ready", call("GET", "/v2/health/ready")),
        ("/health", call("GET", "/health")),
        ("/metrics", call("GET", "/metrics")),
        ("/v2/models/{model}", call("GET", "/v2/models/tiny")),
        ("/v2/models/{model}/versions/{version}/ready", call("GET", "/v2/models/tiny/versions/1/ready")),
        ("/v2/repository/index", call("POST", "/v2/repository/index", json={"ready": True})),
        ("/v1/models/{model}/classify",
         call("POST", "/v1/models/tiny/classify?top_k=2", files={"file": ("cat.jpg", photo, "image/jpeg")})),
        ("/predict", call("POST", "/predict", content=photo, headers={"content-type": "image/jpeg"})),
        ("/v2/models/{model}/infer", call("POST", "/v2/models/tiny/infer", json=infer)),
        ("/v2/models/{model}/infer", call("POST", "/v2/models/tiny/infer", content=header, headers=binary)),
        ("/v2/repository/models/{model}/load", call("POST", "/v2/repository/models/tiny/load")),
        ("/v2/repository/models/{model}/unload", call("POST", "/v2/repository/models/tiny/unload")),
    ]  # fmt: skip
    responses = exchange(make_host(tmp_path, model_files), *(c for _, c in calls), start=True)
    for (template, _), response in zip(calls, responses):
        assert response.status_code == 200, (template, response.text)
        check(document, template, response)
    assert len(responses[8].json()["predictions"]) == 2 and responses[10].json()["id"] == "7"
    binary_answer = responses[11]
    assert binary_answer.headers["content-type"] == "application/octet-stream"
    length = int(binary_answer.headers["inference-header-content-length"])
    schema = {"$ref": "#/components/schemas/InferResponse", "components": document["components"]}
    OAS31Validator(schema).validate(json.loads(binary_answer.content[:length]))


@pytest.mark.parametrize(
    ("template", "method", "url", "status"),
    [
        ("/v2/models/{model}", "GET", "/v2/models/nope", 404),
        ("/v2/models/{model}/versions/{version}", "GET", "/v2/models/tiny/versions/9", 404),
        ("/v2/models/{model}/ready", "GET", "/v2/models/nope/ready", 404),
        ("/v2/models/{model}/infer", "POST", "/v2/models/tiny/infer", 400),
        ("/v1/models/{model}/classify", "POST", "/v1/models/tiny/classify?top_k=x", 400),
        ("/v1/models/{model}/versions/{version}/classify", "POST", "/v1/models/tiny/versions/9/classify", 404),
        ("/v1/infer", "POST", "/v1/infer", 400),
        ("/v2/repository/index", "POST", "/v2/repository/index", 400),
        ("/v2/repository/models/{model}/load", "POST", "/v2/repository/models/nope/load", 400),  # the body
        ("/v2/repository/models/{model}/unload", "POST", "/v2/repository/models/nope/unload", 404),
    ],
)
def test_errors_are_documented(
    tmp_path: Path, model_files: dict[str, Path], document: dict[str, Any],
    template: str, method: str, url: str, status: int,
) -> None:  # fmt: skip
    host = make_host(tmp_path, model_files)
    (response,) = exchange(host, call(method, url, content=b"{not json"), start=True)
    assert response.status_code == status, response.text
    assert check(document, template, response)["error"]
