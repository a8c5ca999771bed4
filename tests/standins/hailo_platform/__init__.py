"""A STAND-IN for HailoRT's ``hailo_platform`` Python package — NOT Hailo's code, and no HailoRT inside.

Written from Hailo's documentation of the HailoRT Python API (HailoRT 4.18–4.20, the versions the Raspberry
Pi's ``hailo-all`` package installs), for lanai's contract test (tests/unit/backends/test_hailo_contract.py),
which puts this folder on ``sys.path`` for itself only. It follows:

- the HailoRT Python API reference, ``hailo_platform.pyhailort.pyhailort``: ``VDevice.create_params()``,
  ``VDevice(params)``, ``VDevice.create_infer_model(hef_source)``, ``VDevice.release()``; ``InferModel``
  (``set_batch_size``, ``input(name)``/``output(name)`` → a stream with ``name``, ``shape`` and
  ``set_format_type``, ``configure()``); ``ConfiguredInferModel`` (``create_bindings()``,
  ``run(bindings, timeout)``, ``shutdown()``); bindings' ``input(name)/output(name).set_buffer(array)``;
  ``HEF(path).get_input_vstream_infos()/get_output_vstream_infos()`` (``name``, ``shape``, ``format.type``,
  ``format.order``, ``quant_info.qp_scale/qp_zp``); ``FormatType`` (UINT8, UINT16, FLOAT32);
  ``HailoSchedulingAlgorithm`` (NONE, ROUND_ROBIN);
- the HailoRT user guide's Python "Inference with the InferModel API" tutorial (round-robin scheduler,
  create_infer_model → configure → create_bindings → set_buffer → run);
- the HailoRT user guide's note that with the scheduler on, network groups are activated by the scheduler
  and must not be activated by the application.

What it does instead of a chip: a "HEF" here is a JSON file (``{"inputs": [...], "outputs": [...]}``, each
``{"name", "shape", "type", "scale", "zero"}``); ``run`` writes into each output, per frame, the input's
mean (uint8 format: quantised with the output's scale and zero point; FLOAT32: that value dequantised).
Every call is appended to :data:`CALLS` so the test can check the order. How the real HailoRT behaves
beyond these documented signatures (errors, threading, timing) is not modelled.
"""

from __future__ import annotations

import enum
import json
from types import SimpleNamespace
from typing import Any

import numpy as np

__version__ = "4.20.0-standin"

CALLS: list[tuple[Any, ...]] = []
"""Every call, in order: ("VDevice", params.scheduling_algorithm), ("create_infer_model", path), …"""
OPEN_DEVICES: list[VDevice] = []


class FormatType(enum.Enum):
    AUTO = 0
    UINT8 = 1
    UINT16 = 2
    FLOAT32 = 3


class FormatOrder(enum.Enum):
    NHWC = 1
    NC = 2
    HAILO_NMS_BY_CLASS = 3


class HailoSchedulingAlgorithm(enum.Enum):
    NONE = 0
    ROUND_ROBIN = 1


class HailoRTException(Exception):
    pass


def _read(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as file:
        return json.load(file)  # type: ignore[no-any-return]


def _info(entry: dict[str, Any]) -> SimpleNamespace:
    order = FormatOrder[entry.get("order", "NHWC")]
    return SimpleNamespace(
        name=entry["name"], shape=tuple(entry["shape"]),
        format=SimpleNamespace(type=FormatType[entry["type"]], order=order),
        quant_info=SimpleNamespace(qp_scale=entry.get("scale", 1.0), qp_zp=entry.get("zero", 0.0)),
    )  # fmt: skip


class HEF:
    def __init__(self, path: str) -> None:
        try:
            self._data = _read(path)
        except (OSError, ValueError) as exc:
            raise HailoRTException(f"HEF file is invalid: {exc}") from exc
        CALLS.append(("HEF", path))

    def get_input_vstream_infos(self) -> list[SimpleNamespace]:
        return [_info(e) for e in self._data["inputs"]]

    def get_output_vstream_infos(self) -> list[SimpleNamespace]:
        return [_info(e) for e in self._data["outputs"]]


class VDevice:
    @staticmethod
    def create_params() -> SimpleNamespace:
        return SimpleNamespace(scheduling_algorithm=HailoSchedulingAlgorithm.NONE, device_count=1, group_id="")

    def __init__(self, params: Any = None) -> None:
        if OPEN_DEVICES:  # one process opens the chip once
            raise HailoRTException("HAILO_OUT_OF_PHYSICAL_DEVICES")
        CALLS.append(("VDevice", getattr(params, "scheduling_algorithm", None)))
        OPEN_DEVICES.append(self)

    def create_infer_model(self, hef_source: str, name: str = "") -> InferModel:
        CALLS.append(("create_infer_model", hef_source))
        return InferModel(_read(hef_source), hef_source)

    def release(self) -> None:
        CALLS.append(("release",))
        OPEN_DEVICES.remove(self)


class _Stream:
    def __init__(self, entry: dict[str, Any], path: str) -> None:
        self.name = entry["name"]
        self.shape = tuple(entry["shape"])
        self.format_type = FormatType[entry["type"]]
        self.scale, self.zero = entry.get("scale", 1.0), entry.get("zero", 0.0)
        self._path = path

    def set_format_type(self, format_type: FormatType) -> None:
        CALLS.append(("set_format_type", self._path, self.name, format_type))
        self.format_type = format_type


class InferModel:
    def __init__(self, data: dict[str, Any], path: str) -> None:
        self._path = path
        self._inputs = {e["name"]: _Stream(e, path) for e in data["inputs"]}
        self._outputs = {e["name"]: _Stream(e, path) for e in data["outputs"]}
        self.batch_size = 1

    @property
    def input_names(self) -> list[str]:
        return list(self._inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self._outputs)

    def input(self, name: str | None = None) -> _Stream:
        return self._inputs[name] if name else next(iter(self._inputs.values()))

    def output(self, name: str | None = None) -> _Stream:
        return self._outputs[name] if name else next(iter(self._outputs.values()))

    def set_batch_size(self, batch_size: int) -> None:
        CALLS.append(("set_batch_size", self._path, batch_size))
        self.batch_size = batch_size

    def configure(self) -> ConfiguredInferModel:
        CALLS.append(("configure", self._path))
        return ConfiguredInferModel(self)


class _Buffer:
    def __init__(self, stream: _Stream) -> None:
        self.stream = stream
        self.buffer: np.ndarray | None = None

    def set_buffer(self, buffer: np.ndarray) -> None:
        self.buffer = buffer

    def get_buffer(self) -> np.ndarray | None:
        return self.buffer


class Bindings:
    def __init__(self, model: InferModel) -> None:
        self._inputs = {n: _Buffer(s) for n, s in model._inputs.items()}
        self._outputs = {n: _Buffer(s) for n, s in model._outputs.items()}

    def input(self, name: str | None = None) -> _Buffer:
        return self._inputs[name] if name else next(iter(self._inputs.values()))

    def output(self, name: str | None = None) -> _Buffer:
        return self._outputs[name] if name else next(iter(self._outputs.values()))


_NUMPY = {FormatType.UINT8: np.uint8, FormatType.UINT16: np.uint16, FormatType.FLOAT32: np.float32}


class ConfiguredInferModel:
    def __init__(self, model: InferModel) -> None:
        self._model = model
        self.closed = False

    def create_bindings(self) -> Bindings:
        CALLS.append(("create_bindings", self._model._path))
        return Bindings(self._model)

    def run(self, bindings: list[Bindings], timeout: int) -> None:
        if self.closed:
            raise HailoRTException("HAILO_INVALID_OPERATION: shut down")
        CALLS.append(("run", self._model._path, len(bindings), timeout))
        for frame in bindings:
            means = []
            for buffer in frame._inputs.values():
                array = buffer.buffer
                stream = buffer.stream
                if array is None or array.shape != stream.shape or array.dtype != _NUMPY[stream.format_type]:
                    raise HailoRTException(f"HAILO_INVALID_ARGUMENT: input {stream.name} buffer")
                value = array.astype(np.float64).mean()
                if stream.format_type is not FormatType.FLOAT32:  # the frame's real value
                    value = (value - stream.zero) * stream.scale
                means.append(value)
            value = float(np.mean(means))
            for buffer in frame._outputs.values():
                stream, out = buffer.stream, buffer.buffer
                if out is None or out.shape != stream.shape or out.dtype != _NUMPY[stream.format_type]:
                    raise HailoRTException(f"HAILO_INVALID_ARGUMENT: output {stream.name} buffer")
                if stream.format_type is FormatType.FLOAT32:
                    out[...] = value
                else:
                    info = np.iinfo(out.dtype)
                    out[...] = np.clip(np.rint(value / stream.scale + stream.zero), info.min, info.max)

    def shutdown(self) -> None:
        CALLS.append(("shutdown", self._model._path))
        self.closed = True
