"""A task written the way a new one is added: this module, plus one line in the registry.

``image-vector`` returns an image model's raw output row, e.g. to compare photos by their features.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from lanai.protocol.wire import Wire, doc
from lanai.tasks.base import Job, RunTiming, Task, TaskModel, Timing
from lanai.types import ImagePreprocess


@dataclass(frozen=True)
class VectorParams(Wire):
    """Parameters of image-vector."""

    normalize: bool = doc("Scale the vector to length 1.", default=False)


@dataclass(frozen=True)
class ImageVector(Wire):
    """The model's output for one image."""

    model: str = doc("The model that answered.")
    vector: tuple[float, ...] = doc("Its output row.")
    timing: Timing = doc("Where the time went.")


class ImageVectorTask(Task[VectorParams, ImageVector]):
    name = "image-vector"
    summary = "The output vector of an image"
    kind = "tensor"
    accepts = "image"
    backends = ("onnx", "litert")
    params = VectorParams
    result = ImageVector

    def job(self, model: TaskModel, data: Any, params: VectorParams) -> Job[ImageVector]:
        from lanai.tasks.image import image_to_tensor

        spec = model.preprocess or ImagePreprocess()
        input_name, output_name = model.info.inputs[0].name, model.info.outputs[0].name

        def prepare() -> dict[str, np.ndarray]:
            return {input_name: image_to_tensor(data, spec, max_pixels=model.max_image_pixels)}

        def result(rows: dict[str, np.ndarray], timing: RunTiming) -> ImageVector:
            vector = rows[output_name][0].astype(np.float64)
            if params.normalize:
                vector = vector / np.linalg.norm(vector)
            return ImageVector(model.info.name, tuple(vector.tolist()), Timing.of(timing, time.perf_counter_ns()))

        return Job(prepare, ("image", spec), None, result)


TASK = ImageVectorTask()
