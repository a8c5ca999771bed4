"""The DeepStack-compatible endpoints over real HTTP: DeepStack's request and answer shapes, the model each
endpoint picks, and DeepStack's error shape."""

from __future__ import annotations

import pytest
from test_detect import coffee, detectors, needs_face, to_coffee

from support import RunningServer, encode, photo

__all__ = ["coffee", "detectors"]  # the fixtures, shared with test_detect


def test_deepstack_detection_answers_in_deepstacks_shape(detectors: RunningServer, coffee: bytes) -> None:
    r = detectors.client.post("/v1/vision/detection", files={"image": ("c.jpg", coffee, "image/jpeg")},
                              data={"min_confidence": "0.75"})  # fmt: skip
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["success"] is True and answer["count"] == 1
    [cup] = answer["predictions"]
    (x1, y1), (x2, y2) = to_coffee(220, 270), to_coffee(420, 370)
    assert cup == {"label": "cup", "confidence": pytest.approx(0.9), "x_min": int(x1), "y_min": int(y1),
                   "x_max": round(x2), "y_max": round(y2)}  # fmt: skip
    default = detectors.client.post("/v1/vision/detection", files={"image": ("c.jpg", coffee)}).json()
    assert [p["label"] for p in default["predictions"]] == ["cup", "person"]  # DeepStack's default 0.4


@needs_face
def test_deepstack_face_uses_the_face_detector(detectors: RunningServer) -> None:
    astronaut = encode(photo("astronaut"), quality=90)
    r = detectors.client.post("/v1/vision/face", files={"image": ("a.jpg", astronaut)})
    assert r.status_code == 200, r.text
    [face] = r.json()["predictions"]
    assert face["label"] == "face" and face["confidence"] > 0.99
    assert 170 <= face["x_min"] <= 185 and 48 <= face["y_min"] <= 64 and face["x_max"] > face["x_min"] + 80


def test_deepstack_errors_have_deepstacks_shape(detectors: RunningServer) -> None:
    r = detectors.client.post("/v1/vision/detection", files={"image": ("x.jpg", b"not an image at all")})
    assert r.status_code == 400
    assert r.json()["success"] is False and "not an image" in r.json()["error"] and "Hint:" in r.json()["error"]
    r = detectors.client.post("/v1/vision/detection", files={"image": ("x.jpg", b"\xff\xd8\xff")},
                              data={"min_confidence": "lots"})  # fmt: skip
    assert r.status_code == 400 and "min_confidence must be a number from 0 to 1" in r.json()["error"]


def test_deepstack_routes_are_inference_level_and_documented(detectors: RunningServer, coffee: bytes) -> None:
    from openapi_schema_validator import OAS31Validator

    from lanai.http.auth import access_of
    from lanai.http.openapi import openapi_document
    from lanai.security.guard import Access

    assert (
        access_of("POST", "/v1/vision/detection") is Access.INFER
        and access_of("POST", "/v1/vision/face") is Access.INFER
    )
    document = openapi_document()
    validator = OAS31Validator({"$ref": "#/components/schemas/DeepStackAnswer", "components": document["components"]})
    validator.validate(detectors.client.post("/v1/vision/detection", files={"image": ("c.jpg", coffee)}).json())
    error = OAS31Validator({"$ref": "#/components/schemas/DeepStackError", "components": document["components"]})
    error.validate(detectors.client.post("/v1/vision/detection", files={"image": ("c.jpg", b"nope")}).json())
    draw = document["paths"]["/v1/models/{model}/detect"]["post"]["responses"]["200"]["content"]
    assert draw["image/jpeg"]["schema"] == {"type": "string", "format": "binary"}
