"""Typed values passed between lanai's layers: protocol-neutral, numpy for tensors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from lanai.protocol.wire import Wire, doc

__all__ = [
    "DATATYPES",
    "TensorSpec",
    "ImagePreprocess",
    "BatchingConfig",
    "ModelInfo",
    "InferRequest",
    "InferResponse",
    "datatype_of",
    "dtype_of",
]

# Open Inference Protocol datatype → numpy dtype. BYTES travels as an object array of ``bytes``.
DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
_NAMES = {dtype: name for name, dtype in DATATYPES.items()}


def datatype_of(dtype: np.dtype) -> str:
    """The Open Inference Protocol name of a numpy dtype (``float32`` → ``FP32``)."""
    if dtype.kind in ("S", "U", "O"):
        return "BYTES"
    return _NAMES[np.dtype(dtype)]


def dtype_of(datatype: str) -> np.dtype:
    """The numpy dtype of an Open Inference Protocol datatype; KeyError when unknown."""
    return DATATYPES[datatype]


@dataclass(frozen=True)
class TensorSpec(Wire):
    """One model input or output. ``-1`` in ``shape`` is a variable dimension (the batch axis first)."""

    name: str = doc("The tensor's name.")
    datatype: str = doc("An Open Inference Protocol datatype.", enum=list(DATATYPES))
    shape: tuple[int, ...] = doc("Dimensions; -1 is any size (batch axis first).", examples=[[-1, 3, 224, 224]])


@dataclass(frozen=True)
class ImagePreprocess:
    """How an encoded image becomes a model input tensor.

    The image is decoded to ``color`` (``RGB``, or ``L`` for one grey channel), its shorter side resized
    to ``resize``, centre-cropped to ``crop`` × ``crop``, then each channel becomes ``(x - mean) / std``
    in ``dtype`` with ``layout``. A grey image uses the first value of ``mean`` and ``std``.

    ``fit`` says how the image meets the model's size: ``crop`` (the above, for classifiers),
    ``letterbox`` (scaled whole to fit the model's input, the rest padded, as YOLO-style detectors want)
    or ``stretch`` (resized to the input's size, aspect ratio lost, as SSD-style detectors want). For
    ``letterbox`` and ``stretch`` the size is the model's input height and width when they are fixed,
    else ``crop`` × ``crop``, and ``resize`` is unused. ``channel_order`` ``BGR`` reverses the colour
    channels after decoding (models trained with OpenCV); ``mean`` and ``std`` are then in B, G, R order.
    The two are written to a manifest only when they differ from their defaults.
    """

    resize: int = 256
    crop: int = 224
    mean: tuple[float, float, float] = (127.0, 127.0, 127.0)
    std: tuple[float, float, float] = (128.0, 128.0, 128.0)
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    dtype: Literal["float32", "uint8"] = "float32"
    color: Literal["RGB", "L"] = "RGB"
    fit: Literal["crop", "letterbox", "stretch"] = "crop"
    channel_order: Literal["RGB", "BGR"] = "RGB"

    @property
    def channels(self) -> int:
        return 1 if self.color == "L" else 3

    def to_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "resize": self.resize,
            "crop": self.crop,
            "mean": list(self.mean),
            "std": list(self.std),
            "layout": self.layout,
            "dtype": self.dtype,
            "color": self.color,
        }
        if self.fit != "crop":  # older manifests stay as they were, byte for byte
            found["fit"] = self.fit
        if self.channel_order != "RGB":
            found["channel_order"] = self.channel_order
        return found

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImagePreprocess:
        default = cls()
        return cls(
            resize=int(data.get("resize", default.resize)),
            crop=int(data.get("crop", default.crop)),
            mean=tuple(float(v) for v in data.get("mean", default.mean)),  # type: ignore[arg-type]
            std=tuple(float(v) for v in data.get("std", default.std)),  # type: ignore[arg-type]
            layout=data.get("layout", default.layout),
            dtype=data.get("dtype", default.dtype),
            color=data.get("color", default.color),
            fit=data.get("fit", default.fit),
            channel_order=data.get("channel_order", default.channel_order),
        )


@dataclass(frozen=True)
class BatchingConfig:
    """Dynamic batching for one model.

    ``max_queue_delay_us`` is how long a batch may wait for more requests once the model is under load;
    a request that arrives while the model is idle runs at once. ``max_queue_size`` bounds the requests
    waiting; past it, new requests are refused (Overloaded) instead of growing memory. ``instances``
    batches may run at once, each on its own thread, the runtime's threads divided among them; 0 means
    one more than the cores (at most 5) on a machine with several cores, else one: one-thread runs
    waste less than a run split across cores, and the extra one keeps the cores busy while another
    waits for Python's GIL. ``max_batch_size`` 0 means sized at load to the memory a row of the model
    takes (``dataplane.batch_size``): up to 8 rows for a small model, fewer for one with large activations.
    """

    max_batch_size: int = 0
    max_queue_delay_us: int = 2000
    max_queue_size: int = 256
    instances: int = 0

    def to_dict(self) -> dict[str, int]:
        return {
            "max_batch_size": self.max_batch_size,
            "max_queue_delay_us": self.max_queue_delay_us,
            "max_queue_size": self.max_queue_size,
            "instances": self.instances,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BatchingConfig:
        default = cls()
        return cls(
            max_batch_size=int(data.get("max_batch_size", default.max_batch_size)),
            max_queue_delay_us=int(data.get("max_queue_delay_us", default.max_queue_delay_us)),
            max_queue_size=int(data.get("max_queue_size", default.max_queue_size)),
            instances=int(data.get("instances", default.instances)),
        )


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model is: served as Open Inference Protocol model metadata and in /health."""

    name: str
    version: str
    task: str
    backend: str
    platform: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    execution_provider: str
    max_batch_size: int


@dataclass
class InferRequest:
    """Named input tensors, each with the batch axis first, and the outputs wanted (None: all)."""

    inputs: dict[str, np.ndarray]
    outputs: list[str] | None = None
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class InferResponse:
    model_name: str
    model_version: str
    outputs: dict[str, np.ndarray]
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
