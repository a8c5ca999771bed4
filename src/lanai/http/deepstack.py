"""DeepStack-compatible endpoints, so the NVR and home-automation tools that call a DeepStack or
CodeProject.AI server (Frigate's deepstack detector, Blue Iris, Home Assistant integrations) can point
at lanai unchanged: ``POST /v1/vision/detection`` and ``POST /v1/vision/face``.

The request is a multipart form with the image in field ``image`` and an optional ``min_confidence``
(0–1, default 0.4; a query parameter works too). The answer is DeepStack's: ``{"success": true,
"predictions": [{"label", "confidence", "x_min", "y_min", "x_max", "y_max"}], "count": n}`` in the
original image's whole pixels, and ``{"success": false, "error": "…"}`` with lanai's status on failure
(refusals by the access gate, before the handler, keep lanai's error body).

Which model answers: the settings ``deepstack_detection_model`` and ``deepstack_face_model``; unset, the
only detect model, else the first that is not a face detector (detection), or the first RetinaFace-decoded
one (face).
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lanai.dataplane import DataPlane
from lanai.dataplane.models import TensorModel
from lanai.errors import BadInput, LanaiError, ModelNotFound
from lanai.http.auth import allow_model
from lanai.http.body import looks_like_image, multipart_file, read_body
from lanai.http.errors import describe, retry_headers, status_of
from lanai.http.json_response import dumps
from lanai.tasks.detect import Detections
from lanai.tasks.detection import choose_decoder

__all__ = ["routes", "MIN_CONFIDENCE"]

MIN_CONFIDENCE = 0.4
"""DeepStack's default when a client sends no min_confidence."""
_FIELD = b'name="min_confidence"'


def _answer(status: int, doc: dict, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(doc), status, headers=headers, media_type="application/json")


def _is_face_model(model: TensorModel) -> bool:
    try:
        return choose_decoder(model.info.outputs, model.view.options).name == "retinaface"
    except LanaiError:
        return False


async def pick_model(plane: DataPlane, face: bool, request: Request) -> TensorModel:
    """The detect model that answers the DeepStack ``face`` (or object detection) endpoint, if the caller's
    key may use it (checked before an on-demand model is loaded for it)."""
    setting = plane.settings.deepstack_face_model if face else plane.settings.deepstack_detection_model
    what = "face" if face else "detection"
    if setting:
        allow_model(request, setting)
        await plane.ensure(setting)  # it may load on demand
        model = plane.tensor_model(setting)
        if model.info.task != "detect":
            raise BadInput(f"deepstack_{what}_model names {setting!r}, a {model.info.task} model.",
                           hint="name a model added with --task detect.")  # fmt: skip
        return model
    detectors = [m for m in plane.models.values() if isinstance(m, TensorModel) and m.info.task == "detect"]
    chosen = [m for m in detectors if _is_face_model(m) == face] or (detectors if len(detectors) == 1 else [])
    if not chosen:
        kind = "face detector (RetinaFace)" if face else "detect model"
        hint = f"add one with lanai models add FILE --task detect, or set deepstack_{what}_model."
        raise ModelNotFound(f"no {kind} is loaded for /v1/vision/{what}.", hint=hint)
    allow_model(request, chosen[0].name)
    return chosen[0]


def _min_confidence(request: Request, body: bytes) -> float:
    """``min_confidence`` from the form (or the query string)."""
    text = request.query_params.get("min_confidence")
    at = body.find(_FIELD)
    if at >= 0:
        start = body.find(b"\r\n\r\n", at)
        end = body.find(b"\r\n--", start + 4)
        if start >= 0 and end >= 0:
            text = body[start + 4 : end].decode("latin-1").strip()
    if text is None or text == "":
        return MIN_CONFIDENCE
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise BadInput(f"min_confidence must be a number from 0 to 1, not {text!r}.", hint="e.g. min_confidence=0.4")
    return value


async def _form(request: Request, limit: int) -> tuple[bytes, float]:
    """The image (form field ``image``, or a raw body) and ``min_confidence``."""
    content_type = request.headers.get("content-type", "")
    body = await read_body(request, limit)
    if content_type.lower().startswith("multipart/") and not looks_like_image(body):
        return multipart_file(body, content_type), _min_confidence(request, body)
    if not body:
        raise BadInput("the request has no image.", hint="send it as form field 'image': curl -F image=@photo.jpg")
    return body, _min_confidence(request, b"")


def _predictions(result: Detections, face: bool) -> list[dict]:
    found = []
    for d in result.detections:
        box = d.box
        found.append({"label": "face" if face else d.label, "confidence": d.score, "x_min": int(box.x1),
                      "y_min": int(box.y1), "x_max": round(box.x2), "y_max": round(box.y2)})  # fmt: skip
    return found


async def _detect(request: Request, face: bool) -> Response:
    started = time.perf_counter()
    plane: DataPlane = request.app.state.plane
    try:
        model = await pick_model(plane, face, request)
        request.scope["lanai.model"] = model.name
        plane.check_room(model.name)  # a full queue refuses before the upload is read
        image, confidence = await _form(request, plane.settings.max_body_bytes)
        params = {"score_threshold": confidence}
        result = await plane.run_task(model.name, "detect", image, params)
    except LanaiError as exc:
        error = {"success": False, "error": describe(exc), "code": status_of(exc)}
        return _answer(status_of(exc), error, retry_headers(exc))
    assert isinstance(result, Detections)
    predictions = _predictions(result, face)
    return _answer(200, {
        "success": True, "predictions": predictions, "count": len(predictions),
        "inferenceMs": round(result.timing.compute_ms), "processMs": round((time.perf_counter() - started) * 1000),
    })  # fmt: skip


async def detection(request: Request) -> Response:
    return await _detect(request, face=False)


async def face(request: Request) -> Response:
    return await _detect(request, face=True)


def routes() -> list[Route]:
    return [
        Route("/v1/vision/detection", detection, methods=["POST"]),
        Route("/v1/vision/face", face, methods=["POST"]),
    ]
