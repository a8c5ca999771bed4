"""HailoRT backend for ``.hef`` models on a Hailo-8/8L (the Raspberry Pi AI Kit and AI HAT/HAT+).

Written against HailoRT's documented Python API (``hailo_platform``) as the Pi's ``hailo-all`` package
ships it (HailoRT 4.18–4.20): the **InferModel** API that Hailo's Python API reference and its Pi examples
use — ``VDevice.create_params()`` with ``HailoSchedulingAlgorithm.ROUND_ROBIN``, ``VDevice(params)``,
``VDevice.create_infer_model(hef_path)``, ``InferModel.set_batch_size`` and
``InferModel.input(name)/output(name).set_format_type(FormatType…)``, ``InferModel.configure()``,
``ConfiguredInferModel.create_bindings()``, ``bindings.input(name).set_buffer(array)`` and
``ConfiguredInferModel.run([bindings…], timeout_ms)``; the tensors' names, shapes, types and quantisation
come from ``HEF(path).get_input_vstream_infos()`` / ``get_output_vstream_infos()``. With the scheduler on,
HailoRT activates each configured model itself when it has frames to run: nothing here activates one.

**One process owns the device.** A Hailo chip is opened by one process at a time (without Hailo's
multi-process service), so this process opens one VDevice with the round-robin scheduler and configures
every ``.hef`` model on it; the scheduler time-shares the chip between them. :data:`DEVICE` holds it,
counts the models using it, and releases it when the last one closes.

Inputs keep the HEF's own type (normally uint8 NHWC, the normalisation compiled into the model; float
arrays are rounded and clipped into it), unless the model's backend options say ``input_format =
"float32"`` (HailoRT then quantises). Outputs are dequantised to float32 by HailoRT (``FormatType.FLOAT32``)
unless ``output_format = "native"`` asks for the quantised values as they are. Every tensor's shape is the
HEF's per-frame shape behind a batch axis of any size: a batch is one ``run`` of one binding per row.

hailo_platform is not on PyPI: it comes from Hailo's apt repository (``sudo apt install hailo-all`` on a
Pi 5) or the wheel on Hailo's Developer Zone; see docs/hardware/hailo.md.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from lanai.backends.base import BackendOptions
from lanai.errors import BackendUnavailable, BadInput, ConfigError, ModelLoadError
from lanai.types import TensorSpec

__all__ = ["HailoBackend", "DeviceOwner", "DEVICE", "INSTALL_HINT"]

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "hailo_platform is not on PyPI. On a Raspberry Pi 5 with the AI HAT: sudo apt install hailo-all, reboot, "
    "and run lanai from a venv made with --system-site-packages (python3 -m venv --system-site-packages …) so "
    "it sees the system's hailo_platform; elsewhere install HailoRT and its Python wheel from Hailo's "
    "Developer Zone. See docs/hardware/hailo.md."
)
_TIMEOUT_MS = 10_000
_DATATYPES = {"UINT8": ("UINT8", np.uint8), "UINT16": ("UINT16", np.uint16), "FLOAT32": ("FP32", np.float32)}


def _runtime() -> Any:
    try:
        import hailo_platform
    except ImportError as exc:
        raise BackendUnavailable(f"the hailo backend needs HailoRT's Python API ({exc}).", hint=INSTALL_HINT) from None
    return hailo_platform


class DeviceOwner:
    """The one VDevice of this process, opened with the round-robin scheduler on first use and released
    when the last model using it lets go."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._device: Any = None
        self._users = 0

    @property
    def users(self) -> int:
        return self._users

    def acquire(self, runtime: Any) -> Any:
        with self._lock:
            if self._device is None:
                params = runtime.VDevice.create_params()
                params.scheduling_algorithm = runtime.HailoSchedulingAlgorithm.ROUND_ROBIN
                try:
                    self._device = runtime.VDevice(params)
                except Exception as exc:  # HailoRTException and its kin
                    raise ModelLoadError(
                        f"cannot open the Hailo device: {exc}",
                        hint="check that `hailortcli fw-control identify` sees it and that no other process "
                        "(another lanai, a rpicam-apps pipeline) holds it.",
                    ) from exc
                log.info("opened the Hailo device with the round-robin scheduler")
            self._users += 1
            return self._device

    def release(self) -> None:
        with self._lock:
            if self._users == 0:
                return
            self._users -= 1
            if self._users == 0 and self._device is not None:
                device, self._device = self._device, None
                device.release()
                log.info("released the Hailo device (no model uses it)")


DEVICE = DeviceOwner()
"""This process's Hailo device: shared by every model loaded on the hailo backend."""


class _Stream:
    """One input or output: its spec, the numpy type of its buffers, and its per-frame shape."""

    def __init__(self, info: Any, format_type: str) -> None:
        if "NMS" in str(getattr(info.format, "order", "")):
            raise ModelLoadError(
                f"output {info.name!r} is Hailo's on-chip NMS, whose per-class lists lanai does not decode.",
                hint="compile the HEF without the NMS post-process (raw head outputs), or serve it with "
                "Hailo's own tools.",
            )
        datatype, kind = _DATATYPES.get(format_type, (format_type, np.uint8))
        self.dtype = np.dtype(kind)
        self.name = str(info.name)
        self.frame = tuple(int(d) for d in info.shape)
        self.format_type = format_type
        self.spec = TensorSpec(self.name, datatype, (-1, *self.frame))


def _type_name(format_type: Any) -> str:
    return str(getattr(format_type, "name", format_type)).rsplit(".", 1)[-1].upper()


class HailoBackend:
    """A ``.hef`` model configured on the process's shared Hailo device."""

    platform = "hailo_hef"
    max_batch_size = 0

    def __init__(self, path: Path, runtime: Any, options: BackendOptions) -> None:
        extra = options.extra
        output_format = str(extra.get("output_format", "float32")).lower()
        input_format = str(extra.get("input_format", "native")).lower()
        if output_format not in ("float32", "native") or input_format not in ("float32", "native"):
            raise ConfigError("hailo input_format/output_format must be 'float32' or 'native'.",
                              hint="e.g. --option output_format=float32")  # fmt: skip
        self.path = path
        self._timeout_ms = int(extra.get("timeout_ms", _TIMEOUT_MS))
        input_infos, output_infos = _vstream_infos(runtime, path)
        self._inputs = [_Stream(i, _format(i, input_format)) for i in input_infos]
        self._outputs = [_Stream(o, _format(o, output_format)) for o in output_infos]
        self.inputs = tuple(s.spec for s in self._inputs)
        self.outputs = tuple(s.spec for s in self._outputs)
        self._device = DEVICE.acquire(runtime)
        try:
            self._model, self._configured = self._configure(runtime, int(extra.get("batch_size", 1)))
        except BaseException:
            DEVICE.release()
            raise
        self._lock = threading.Lock()
        self._closed = False
        self.execution_provider = f"Hailo ({len(self._inputs)} in, {len(self._outputs)} out, scheduler round-robin)"
        self.runtime_version = f"HailoRT {getattr(runtime, '__version__', 'unknown')}"

    def _configure(self, runtime: Any, batch_size: int) -> tuple[Any, Any]:
        try:
            model = self._device.create_infer_model(str(self.path))
            model.set_batch_size(batch_size)
            for stream in self._inputs:
                model.input(stream.name).set_format_type(getattr(runtime.FormatType, stream.format_type))
            for stream in self._outputs:
                model.output(stream.name).set_format_type(getattr(runtime.FormatType, stream.format_type))
            return model, model.configure()
        except Exception as exc:
            raise ModelLoadError(f"HailoRT cannot configure {self.path.name} on the device: {exc}",
                                 hint="the chip may be out of room for one more model, or the HEF was compiled "
                                 "for another chip; `hailortcli run` on the file says more.") from exc  # fmt: skip

    @classmethod
    def load(cls, path: Path, options: BackendOptions) -> HailoBackend:
        return cls(Path(path), _runtime(), options)

    def run(self, inputs: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        batch = _rows(inputs, self._inputs)
        wanted = [s for s in self._outputs if outputs is None or s.name in outputs]
        results = {s.name: np.empty((batch, *s.frame), dtype=s.dtype) for s in self._outputs}
        frames = []
        for row in range(batch):
            binding = self._configured.create_bindings()
            for stream in self._inputs:
                binding.input(stream.name).set_buffer(_to_stream(inputs[stream.name][row], stream))
            for stream in self._outputs:
                binding.output(stream.name).set_buffer(results[stream.name][row])
            frames.append(binding)
        with self._lock:
            if self._closed:
                raise ModelLoadError(f"{self.path.name} was closed.")
            self._configured.run(frames, self._timeout_ms)
        return {s.name: results[s.name] for s in wanted}

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._configured.shutdown()
            except Exception as exc:  # the device is released below either way
                log.warning("HailoRT did not shut %s down cleanly: %s", self.path.name, exc)
            self._configured = self._model = None
        DEVICE.release()


def _vstream_infos(runtime: Any, path: Path) -> tuple[list[Any], list[Any]]:
    """The HEF's input and output vstream infos: names, per-frame shapes, types, quantisation."""
    try:
        hef = runtime.HEF(str(path))
        return list(hef.get_input_vstream_infos()), list(hef.get_output_vstream_infos())
    except Exception as exc:
        raise ModelLoadError(
            f"HailoRT cannot read {path.name}: {exc}",
            hint="check that it is a .hef compiled for this chip (Hailo-8L on the Pi's AI HAT, Hailo-8 on the "
            "26 TOPS one) by a Dataflow Compiler this HailoRT can read.",
        ) from exc


def _format(info: Any, wanted: str) -> str:
    """The FormatType name to ask HailoRT for: FLOAT32, or the HEF's own (native) type."""
    return "FLOAT32" if wanted == "float32" else _type_name(info.format.type)


def _rows(inputs: dict[str, np.ndarray], streams: list[_Stream]) -> int:
    batch = None
    for stream in streams:
        if stream.name not in inputs:
            raise BadInput(f"input {stream.name!r} is missing.")
        array = inputs[stream.name]
        if tuple(array.shape[1:]) != stream.frame:
            raise BadInput(f"input {stream.name!r} has shape {list(array.shape)}; the model takes "
                           f"[N, {', '.join(map(str, stream.frame))}].")  # fmt: skip
        if batch is not None and array.shape[0] != batch:
            raise BadInput("the inputs have different batch sizes.")
        batch = array.shape[0]
    return batch or 0


def _to_stream(array: np.ndarray, stream: _Stream) -> np.ndarray:
    if array.dtype == stream.dtype:
        return np.ascontiguousarray(array)
    if np.issubdtype(stream.dtype, np.integer) and not np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(stream.dtype)  # type: ignore[type-var]
        return np.ascontiguousarray(np.clip(np.rint(array), info.min, info.max).astype(stream.dtype))
    return np.ascontiguousarray(array, dtype=stream.dtype)


def main(argv: list[str]) -> int:
    """``python -m lanai.backends.hailo model.hef``: open the device, configure the model, run one batch of
    zeros of two frames, and print what came back: the check to run on a Pi with the AI HAT."""
    import sys
    import time

    if len(argv) != 1:
        print("usage: python -m lanai.backends.hailo MODEL.hef", file=sys.stderr)
        return 2
    try:
        model = HailoBackend.load(Path(argv[0]), BackendOptions())
    except (BackendUnavailable, ModelLoadError, ConfigError) as exc:
        print(f"error: {exc.message}\nhint: {exc.hint}", file=sys.stderr)
        return 1
    try:
        print(f"{model.runtime_version}: {argv[0]} on {model.execution_provider}")
        for kind, specs in (("input", model.inputs), ("output", model.outputs)):
            for spec in specs:
                print(f"  {kind} {spec.name} {spec.datatype} {list(spec.shape)}")
        frames = {s.name: np.zeros((2, *s.shape[1:]), dtype=_DATATYPES_BY_NAME[s.datatype]) for s in model.inputs}
        start = time.perf_counter()
        results = model.run(frames)
        took = (time.perf_counter() - start) * 1000
        for name, array in results.items():
            print(f"  ran: {name} {array.dtype} {list(array.shape)} min {array.min():.4g} max {array.max():.4g}")
        print(f"ok: 2 frames in {took:.1f} ms (the first run includes HailoRT's warm-up)")
    finally:
        model.close()
    return 0


_DATATYPES_BY_NAME = {datatype: kind for datatype, kind in _DATATYPES.values()}

if __name__ == "__main__":  # pragma: no cover
    import sys

    raise SystemExit(main(sys.argv[1:]))
