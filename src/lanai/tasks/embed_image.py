"""The embed-image task: an image in, one L2-normalised vector out (a CNN's pooled features).

The model is an image network whose output is a feature vector ``[N, D]`` (e.g. MobileNetV2's 1280
pooled features) or a feature map ``[N, C, H, W]`` / ``[N, H, W, C]`` (averaged over its positions here).
With several outputs, ``--option output=NAME`` picks one; else the first whose name says features
(``features``, ``embedding``, ``pool``…), else the first. Images are decoded and preprocessed as for
classify, on the batch thread.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lanai.errors import ModelLoadError
from lanai.protocol.wire import Wire, doc
from lanai.tasks.base import Job, NoParams, RunTiming, Task, TaskModel, Timing, wire_vector
from lanai.types import ImagePreprocess, ModelInfo, TensorSpec

__all__ = ["TASK", "ImageEmbedding", "feature_output", "pool_features"]

_FEATURE_NAMES = ("feature", "embed", "pool", "vector")


@dataclass(frozen=True)
class ImageEmbedding(Wire):
    """One image's vector."""

    model: str = doc("The model that answered.")
    version: str = doc("Its version.")
    embedding: Sequence[float] = doc("The vector, of length 1.")
    dimensions: int = doc("Its length.")
    cached: bool = doc("Answered from the embedding cache.")
    timing: Timing = doc("Where the time went (zeros when cached).")


class EmbedImage(Task[NoParams, ImageEmbedding]):
    name = "embed-image"
    summary = "Embed an image"
    kind = "tensor"
    accepts = "image"
    backends = ("onnx", "litert", "hailo")
    params = NoParams
    result = ImageEmbedding
    cacheable = True

    def check(self, info: ModelInfo) -> None:
        super().check(info)
        if len(info.inputs) != 1 or len(info.inputs[0].shape) != 4:
            raise ModelLoadError(
                f"an image encoder takes one image tensor [N, C, H, W] or [N, H, W, C]; model {info.name!r} does not.",
                hint="add it with --task infer to serve its tensors as they are.",
            )
        if all(len(spec.shape) not in (2, 4) for spec in info.outputs):
            raise ModelLoadError(
                f"model {info.name!r} has no feature output [N, D] or feature map [N, C, H, W].",
                hint="export the network up to its pooled features.",
            )

    def job(self, model: TaskModel, data: Any, params: NoParams) -> Job[ImageEmbedding]:
        from lanai.tasks.image import image_to_tensor  # Pillow: only where images are decoded
        from lanai.tasks.text import normalise

        spec = model.preprocess or ImagePreprocess()
        input_name = model.info.inputs[0].name
        output = feature_output(model.info.outputs, model.options.get("output"))
        max_pixels, info = model.max_image_pixels, model.info
        channels_last = spec.layout == "NHWC"

        def prepare() -> dict[str, np.ndarray]:
            return {input_name: image_to_tensor(data, spec, max_pixels=max_pixels)}

        def finish(outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            vectors = normalise(pool_features(outputs[output.name], channels_last=channels_last))
            return {"vector": vectors, "tokens": np.zeros(len(vectors), dtype=np.int64)}

        def result(rows: dict[str, np.ndarray], timing: RunTiming) -> ImageEmbedding:
            vector = rows["vector"][0]
            return ImageEmbedding(info.name, info.version, wire_vector(vector), len(vector),
                                  timing.batch_size == 0, Timing.of(timing, time.perf_counter_ns()))  # fmt: skip

        return Job(prepare, ("embed-image", spec, output.name), finish, result)


def feature_output(outputs: tuple[TensorSpec, ...], wanted: Any = None) -> TensorSpec:
    """The output that holds the features: ``wanted`` by name, else one named like features, else the first."""
    if wanted is not None:
        for spec in outputs:
            if spec.name == wanted:
                return spec
        raise ModelLoadError(f"the model has no output {wanted!r}.",
                             hint=f"its outputs: {', '.join(s.name for s in outputs)}.")  # fmt: skip
    usable = [spec for spec in outputs if len(spec.shape) in (2, 4)]
    for spec in usable:
        if any(word in spec.name.lower() for word in _FEATURE_NAMES):
            return spec
    return usable[0] if usable else outputs[0]


def pool_features(features: np.ndarray, *, channels_last: bool = False) -> np.ndarray:
    """[N, D] as it is; a feature map [N, C, H, W] (or [N, H, W, C]) averaged over its positions."""
    features = features.astype(np.float32, copy=False)
    if features.ndim == 4:
        return features.mean(axis=(1, 2) if channels_last else (2, 3))  # type: ignore[no-any-return]
    return features.reshape(len(features), -1)


TASK = EmbedImage()
