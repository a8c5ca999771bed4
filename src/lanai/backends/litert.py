"""LiteRT (TensorFlow Lite) backend for ``.tflite`` models: XNNPACK on the CPU, or an external delegate.

Delegates are shared libraries named in the model's backend options (``delegates = ["libedgetpu.so.1"]``)
or the server's settings; each is loaded if present, in order, and the first that loads runs the model.
A missing one is logged and the model runs on the CPU instead, so a box without its accelerator still
serves. A model compiled for the Coral Edge TPU (``edgetpu_compiler`` writes ``*_edgetpu.tflite``) is the
exception: its TPU part is one ``edgetpu-custom-op`` that LiteRT's CPU cannot run, so without the
``libedgetpu.so.1`` delegate it does not load at all (a ModelLoadError that says how to fix it); such a model
tries that delegate even when none is named, and ``models add`` records it in the manifest (see
:func:`edgetpu_options`). Quantised (uint8/int8) inputs and outputs are converted through their scale and zero point, so
clients and preprocessing see a float model either way. An interpreter is not thread-safe: each batch
thread gets interpreters of its own.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from lanai.backends.base import BackendOptions
from lanai.errors import BackendUnavailable, BadInput, ModelLoadError
from lanai.telemetry.cpus import usable_cpus
from lanai.types import TensorSpec

__all__ = ["LiteRTBackend", "EDGETPU_DELEGATE", "edgetpu_compiled", "edgetpu_options"]

log = logging.getLogger(__name__)

EDGETPU_DELEGATE = "libedgetpu.so.1"
"""The Coral Edge TPU's LiteRT delegate (Debian package libedgetpu1-std, or -max)."""
_EDGETPU_OP = "edgetpu-custom-op"
_EDGETPU_HINT = (
    "install the Edge TPU runtime (libedgetpu1-std from Coral's apt repository), plug the Edge TPU in, and "
    f"check that {EDGETPU_DELEGATE} loads (lanai doctor: litert delegates); or add the model as it was before "
    "edgetpu_compiler (the plain .tflite), which runs on the CPU. See docs/hardware/coral.md."
)


def edgetpu_compiled(filename: str) -> bool:
    """Whether ``filename`` follows edgetpu_compiler's naming (``model_edgetpu.tflite``)."""
    return filename.lower().endswith("_edgetpu.tflite")


def edgetpu_options(filename: str, options: dict[str, Any]) -> dict[str, Any]:
    """A manifest's backend options for the model file ``filename``: an Edge-TPU-compiled one wants the
    Edge TPU delegate, unless ``delegates`` is given already."""
    if not edgetpu_compiled(filename) or "delegates" in options:
        return options
    return {**options, "delegates": [EDGETPU_DELEGATE]}


_DATATYPES = {np.dtype(np.float32): "FP32", np.dtype(np.float16): "FP16", np.dtype(np.int32): "INT32",
              np.dtype(np.int64): "INT64", np.dtype(np.uint8): "UINT8", np.dtype(np.int8): "INT8",
              np.dtype(np.bool_): "BOOL"}  # fmt: skip


def _runtime() -> Any:
    try:
        from ai_edge_litert import interpreter
    except ImportError:
        raise BackendUnavailable(
            "the LiteRT backend needs ai-edge-litert.", hint="pip install 'lanai[litert]'"
        ) from None
    return interpreter


class _Tensor:
    """One input or output: its index, and how to quantise or dequantise it (scale 0: not quantised)."""

    def __init__(self, detail: dict[str, Any]) -> None:
        self.index = detail["index"]
        self.dtype = np.dtype(detail["dtype"])
        self.allocated = tuple(int(d) for d in detail["shape"])
        """The shape a fresh interpreter allocates this tensor with."""
        scale, zero = detail["quantization"]
        self.scale, self.zero = float(scale), int(zero)
        signature = detail.get("shape_signature")
        shape = signature if signature is not None and len(signature) else detail["shape"]
        dims = tuple(int(d) if d >= 0 else -1 for d in shape)
        datatype = "FP32" if self.quantised else _DATATYPES.get(self.dtype, str(self.dtype))
        self.spec = TensorSpec(detail["name"], datatype, dims)

    @property
    def quantised(self) -> bool:
        return self.scale != 0.0 and self.dtype in (np.dtype(np.uint8), np.dtype(np.int8))

    def to_model(self, array: np.ndarray) -> np.ndarray:
        if not self.quantised:
            return np.ascontiguousarray(array, dtype=self.dtype)
        info = np.iinfo(self.dtype)
        return np.clip(np.rint(array / self.scale + self.zero), info.min, info.max).astype(self.dtype)

    def from_model(self, array: np.ndarray) -> np.ndarray:
        if not self.quantised:
            return array.copy()
        return ((array.astype(np.float32) - self.zero) * self.scale).astype(np.float32)


class LiteRTBackend:
    """A ``.tflite`` model on LiteRT."""

    platform = "tflite"

    def __init__(self, path: Path, threads: int, delegates: tuple[str, ...]) -> None:
        self.path = path
        self._threads = threads
        self._delegate_names = delegates
        self._local = threading.local()
        interpreter, self.delegate = self._interpreter()
        self._local.interpreter = interpreter
        self._inputs = [_Tensor(d) for d in interpreter.get_input_details()]
        self._outputs = [_Tensor(d) for d in interpreter.get_output_details()]
        self.inputs = tuple(t.spec for t in self._inputs)
        self.outputs = tuple(t.spec for t in self._outputs)
        self.max_batch_size = 1 if any(t.spec.shape[:1] == (1,) for t in self._inputs) else 0
        self.execution_provider = self.delegate or f"XNNPACK CPU ({threads} threads)"
        self.runtime_version = f"ai-edge-litert {_version()}"

    @classmethod
    def load(cls, path: Path, options: BackendOptions) -> LiteRTBackend:
        delegates = options.extra.get("delegates", ())
        if isinstance(delegates, str):
            delegates = (delegates,)
        threads = options.intra_op_threads or usable_cpus().count
        return cls(Path(path), threads, tuple(delegates))

    def _interpreter(self) -> tuple[Any, str | None]:
        """A new interpreter, on the first delegate that loads, else the CPU."""
        runtime = _runtime()
        for name in self._delegate_names:
            interpreter = self._on_delegate(runtime, name)
            if interpreter is not None:
                return interpreter, name
        if self._delegate_names:
            log.warning("%s runs on the CPU: none of its delegates (%s) loaded", self.path.name,
                        ", ".join(self._delegate_names))  # fmt: skip
        try:
            interpreter = runtime.Interpreter(str(self.path), num_threads=self._threads)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            text = " ".join(str(exc).split())  # its text ends in a newline
            if _EDGETPU_OP not in text:
                raise ModelLoadError(f"LiteRT cannot load {self.path.name}: {text}",
                                     hint="check that it is a .tflite flatbuffer.") from exc  # fmt: skip
            if EDGETPU_DELEGATE not in self._delegate_names:  # the model says what it needs: try it
                interpreter = self._on_delegate(runtime, EDGETPU_DELEGATE)
                if interpreter is not None:
                    return interpreter, EDGETPU_DELEGATE
            raise ModelLoadError(
                f"{self.path.name} is compiled for the Coral Edge TPU (its {_EDGETPU_OP}), which LiteRT's CPU "
                f"cannot run, and the Edge TPU delegate {EDGETPU_DELEGATE} did not load.",
                hint=_EDGETPU_HINT,
            ) from exc
        return interpreter, None

    def _on_delegate(self, runtime: Any, name: str) -> Any:
        """A new interpreter on delegate ``name``, or None (logged) if it does not load or run the model."""
        try:
            ctypes.CDLL(name)  # absent: say so without load_delegate (whose failure path raises in __del__)
            delegate = runtime.load_delegate(name)
        except (ValueError, OSError, RuntimeError) as exc:
            log.warning("LiteRT delegate %s is not available (%s); trying the next, then the CPU", name, exc)
            return None
        try:
            interpreter = runtime.Interpreter(str(self.path), experimental_delegates=[delegate])
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            log.warning("LiteRT delegate %s could not run %s (%s)", name, self.path.name, exc)
            return None
        log.info("%s runs on LiteRT delegate %s", self.path.name, name)
        return interpreter

    def _mine(self) -> Any:
        interpreter = getattr(self._local, "interpreter", None)
        if interpreter is None:
            interpreter, _ = self._interpreter()
            self._local.interpreter = interpreter
        if not hasattr(self._local, "shapes"):
            self._local.shapes = {t.index: t.allocated for t in self._inputs}
        return interpreter

    def run(self, inputs: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        batch = next(iter(inputs.values())).shape[0] if inputs else 1
        if self.max_batch_size == 1 and batch > 1:
            rows = [self.run({k: v[i : i + 1] for k, v in inputs.items()}, outputs) for i in range(batch)]
            return {name: np.concatenate([r[name] for r in rows]) for name in rows[0]}
        interpreter = self._mine()
        shapes: dict[int, tuple[int, ...]] = self._local.shapes  # this thread's interpreter's input shapes
        for tensor in self._inputs:
            if tensor.spec.name not in inputs:
                raise BadInput(f"input {tensor.spec.name!r} is missing.")
            array = inputs[tensor.spec.name]
            if shapes[tensor.index] != array.shape:
                interpreter.resize_tensor_input(tensor.index, array.shape)
                interpreter.allocate_tensors()
                shapes[tensor.index] = array.shape
            interpreter.set_tensor(tensor.index, tensor.to_model(array))
        interpreter.invoke()
        wanted = set(outputs or [t.spec.name for t in self._outputs])
        return {
            t.spec.name: t.from_model(interpreter.get_tensor(t.index)) for t in self._outputs if t.spec.name in wanted
        }

    def close(self) -> None:
        self._local = threading.local()


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("ai-edge-litert")
    except Exception:  # pragma: no cover
        return "unknown"
