"""The detect task: an image in, boxes with labels and scores out (and keypoints where the model has
them), in the original image's pixels.

The model's head family (YOLOv5/v8, TF Object Detection API SSD, RetinaFace, GFL) is decoded by
``tasks.detection``; the decoder is chosen at ``models add`` and recorded in the manifest. Preparing an
image, decoding a whole batch's outputs and per-class NMS all run on the batch thread; only mapping the
few kept boxes back to the original's pixels runs with the answer. Requests with different thresholds
do not share a batch (its post-processing is shared), which costs nothing when clients use the same.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lanai.errors import BadInput, ModelLoadError
from lanai.protocol.wire import Wire, doc
from lanai.tasks.base import Job, RunTiming, Task, TaskModel, Timing
from lanai.tasks.detection import DECODERS, choose_decoder
from lanai.tasks.detection.base import option
from lanai.tasks.detection.geometry import Placement
from lanai.tasks.detection.nms import select
from lanai.types import ImagePreprocess, ModelInfo, TensorSpec

__all__ = ["TASK", "DetectParams", "Detections", "Detection", "Box", "Keypoint", "MAX_DETECTIONS", "input_size"]

MAX_DETECTIONS = 1000


@dataclass(frozen=True)
class DetectParams(Wire):
    """Parameters of detect."""

    score_threshold: float = doc("Leave out detections scored below this.", default=0.25, minimum=0, maximum=1)
    iou_threshold: float = doc(
        "Non-maximum suppression: of two boxes of one class overlapping by more than this (intersection over "
        "union), the lower-scored is dropped.", default=0.45, minimum=0, maximum=1)  # fmt: skip
    max_detections: int = doc("At most this many detections, best first.", default=100, minimum=1,
                              maximum=MAX_DETECTIONS)  # fmt: skip
    classes: str = doc("Only these classes: labels or class indices, comma-separated (empty: all).", default="")
    draw: bool = doc("Answer with the image and its boxes drawn on it, as JPEG, instead of JSON.", default=False)


@dataclass(frozen=True)
class Box(Wire):
    """A box in the original image's pixels (0, 0 is the top-left corner)."""

    x1: float = doc("Left edge.")
    y1: float = doc("Top edge.")
    x2: float = doc("Right edge.")
    y2: float = doc("Bottom edge.")


@dataclass(frozen=True)
class Keypoint(Wire):
    """A point the model places on what it found (a face's eyes, nose and mouth corners; a body's joints)."""

    x: float = doc("In the original image's pixels.")
    y: float = doc("In the original image's pixels.")
    score: float = doc("The model's confidence in the point (1 when it gives none).")


@dataclass(frozen=True)
class Detection(Wire):
    """One thing found."""

    label: str = doc("The class label (its index when the model has no labels).")
    index: int = doc("The class index (into the model's labels).")
    score: float = doc("Confidence, 0–1.", minimum=0, maximum=1)
    box: Box = doc("Where it is.")
    keypoints: tuple[Keypoint, ...] = doc("Its points, in the model's order; empty for models without points.")


@dataclass(frozen=True)
class Detections(Wire):
    """What was found in an image, best first."""

    model: str = doc("The model that answered.")
    version: str = doc("Its version.")
    width: int = doc("The image's width in pixels (upright).")
    height: int = doc("The image's height in pixels (upright).")
    detections: tuple[Detection, ...] = doc("What was found, best first.")
    timing: Timing = doc("Where the time went.")


def input_size(spec: TensorSpec, preprocess: ImagePreprocess) -> tuple[int, int]:
    """The width and height a model's image input takes: its own when fixed, else ``crop`` × ``crop``."""
    height, width = (spec.shape[2], spec.shape[3]) if preprocess.layout == "NCHW" else spec.shape[1:3]
    if height > 0 and width > 0:
        return width, height
    return preprocess.crop, preprocess.crop


class Detect(Task[DetectParams, Detections]):
    name = "detect"
    summary = "Find objects in an image"
    kind = "tensor"
    accepts = "image"
    backends = ("onnx", "litert", "hailo")
    params = DetectParams
    result = Detections

    def check(self, info: ModelInfo) -> None:
        super().check(info)
        if len(info.inputs) != 1 or len(info.inputs[0].shape) != 4:
            shapes = ", ".join(f"{s.name} {list(s.shape)}" for s in info.inputs)
            raise ModelLoadError(
                f"a detector takes one image tensor [N, C, H, W] or [N, H, W, C]; model {info.name!r} takes {shapes}.",
                hint="add it with --task infer to serve its tensors as they are.",
            )
        if not any(decoder.fits(info.outputs) for decoder in DECODERS.values()):
            choose_decoder(info.outputs, {})  # raises, saying which outputs each family takes

    def job(self, model: TaskModel, data: Any, params: DetectParams) -> Job[Detections]:
        from lanai.tasks.detection.prepare import prepare_image  # Pillow: only where images are decoded

        info, options = model.info, model.options
        decoder = choose_decoder(info.outputs, options)
        spec = model.preprocess or decoder.preprocess
        size = input_size(info.inputs[0], spec)
        labels = model.labels or decoder.labels
        offset = option(options, "label_offset", decoder.label_offset)
        allowed = _allowed(params.classes, labels, offset)
        input_name, max_pixels = info.inputs[0].name, model.max_image_pixels
        placed: list[Placement] = []

        def prepare() -> dict[str, np.ndarray]:
            tensor, place = prepare_image(data, spec, size, max_pixels=max_pixels)
            placed.append(place)
            return {input_name: tensor}

        def finish(outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            found = decoder.decode(outputs, size, options)  # the whole batch at once, off the event loop
            picked = select(found, score_threshold=params.score_threshold, iou_threshold=params.iou_threshold,
                            limit=params.max_detections, allowed=allowed)  # fmt: skip
            return picked.rows()

        def result(rows: dict[str, np.ndarray], timing: RunTiming) -> Detections:
            place = placed[0]
            found = _detections(rows, place, labels, offset)
            return Detections(info.name, info.version, place.width, place.height, found,
                              Timing.of(timing, time.perf_counter_ns()))  # fmt: skip

        key = ("detect", spec, size, params.score_threshold, params.iou_threshold, params.max_detections,
               None if allowed is None else tuple(allowed.tolist()))  # fmt: skip
        return Job(prepare, key, finish, result)

    def render(self, data: bytes, result: Detections) -> tuple[bytes, str]:
        """The image with ``result``'s boxes drawn on it, as JPEG (for ``draw=true``)."""
        from lanai.tasks.detection.draw import draw_detections

        return draw_detections(data, result), "image/jpeg"


TASK = Detect()


def _allowed(classes: str, labels: Sequence[str], offset: int) -> np.ndarray | None:
    """The raw class ids that ``classes`` (labels or indices, comma-separated) names; None for all."""
    wanted = [part.strip() for part in classes.split(",") if part.strip()]
    if not wanted:
        return None
    by_label = {label.lower(): i for i, label in enumerate(labels)}
    ids = []
    for item in wanted:
        if item.lower() in by_label:
            ids.append(by_label[item.lower()] + offset)
        elif item.isascii() and item.isdigit():  # "²".isdigit(), but int("²") fails
            ids.append(int(item) + offset)
        else:
            known = ", ".join(labels[:12]) + (", …" if len(labels) > 12 else "") if labels else "none (use indices)"
            raise BadInput(f"classes: the model has no class {item!r}.", hint=f"its labels: {known}.")
    return np.asarray(ids, np.int64)


def _detections(
    rows: dict[str, np.ndarray], place: Placement, labels: Sequence[str], offset: int
) -> tuple[Detection, ...]:
    count = int(rows["count"][0])
    boxes = place.boxes_to_original(rows["boxes"][0, :count])
    points = rows["keypoints"][0, :count]
    xy = place.points_to_original(points[..., :2]) if points.shape[1] else points[..., :2]
    found = []
    for i in range(count):
        index = int(rows["classes"][0, i]) - offset
        label = labels[index] if 0 <= index < len(labels) else str(index)
        box = Box(*(round(float(v), 2) for v in boxes[i]))
        keypoints = tuple(
            Keypoint(round(float(x), 2), round(float(y), 2), round(float(s), 4))
            for (x, y), s in zip(xy[i].tolist(), points[i, :, 2].tolist())
        )
        found.append(Detection(label, index, round(float(rows["scores"][0, i]), 5), box, keypoints))
    return tuple(found)
