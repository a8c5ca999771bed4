"""PyTorch → ONNX: load the user's model, export it with a dynamic batch axis, and prove the export.

A model is named as ``package.module:factory`` or ``path/to/file.py:factory`` (a callable that returns
the ``nn.Module``; its weights come from a state-dict file), or as a TorchScript file.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lanai.errors import OptimizeError

__all__ = ["load_factory", "load_torch_model", "export_onnx", "ExportCheck", "INPUT_NAME", "OUTPUT_NAME"]

INPUT_NAME = "input"
OUTPUT_NAME = "output"
_CHECK_ROWS = 3  # differs from the export sample's batch, so the check exercises the dynamic axis
_TOLERANCE = 1e-3  # largest |ONNX - PyTorch| accepted, relative to the outputs' largest magnitude


def load_factory(spec: str) -> Any:
    """The callable named by ``package.module:name`` or ``path/to/file.py:name``."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise OptimizeError(
            "load", f"{spec!r} names no factory.", hint="write it as package.module:function or path/file.py:function."
        )
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise OptimizeError("load", f"{path} does not exist.", hint="check the path of the model's file.")
            loader_spec = importlib.util.spec_from_file_location(f"lanai_user_{path.stem}", path)
            assert loader_spec is not None and loader_spec.loader is not None
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[loader_spec.name] = module
            loader_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except OptimizeError:
        raise
    except Exception as exc:
        raise OptimizeError("load", f"cannot import {module_name}: {exc}", hint="check that it is importable.") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise OptimizeError("load", f"{module_name} has no attribute {attr!r}.") from None


def load_torch_model(spec: str, weights: Path | None = None) -> Any:
    """An ``nn.Module`` in eval mode, from a factory plus state dict, or from a TorchScript file."""
    import torch

    if ":" not in spec or Path(spec).is_file():
        if weights is not None:
            raise OptimizeError("load", "--weights goes with a factory, not with a TorchScript file.")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated, still in use
                return torch.jit.load(spec, map_location="cpu").eval()
        except Exception as exc:
            raise OptimizeError(
                "load",
                f"{spec} is not a TorchScript file ({exc}).".replace("\n", " "),
                hint="give an .onnx file, a TorchScript file, or package.module:factory with --weights.",
            ) from exc
    model = load_factory(spec)()
    if not isinstance(model, torch.nn.Module):
        raise OptimizeError("load", f"{spec} returned {type(model).__name__}, not a torch.nn.Module.")
    if weights is not None:
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise OptimizeError("load", f"cannot read the weights {weights}: {exc}") from exc
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        try:
            model.load_state_dict(state)
        except Exception as exc:
            raise OptimizeError(
                "load",
                f"the weights in {weights} do not fit {spec}: {exc}".split("\n")[0],
                hint="give the factory that built the model these weights came from.",
            ) from exc
    return model.eval()


@dataclass(frozen=True)
class ExportCheck:
    """How closely the ONNX file reproduces PyTorch on real samples."""

    max_abs_diff: float
    scale: float

    def describe(self) -> str:
        return f"onnx.checker passed; max |ONNX − PyTorch| = {self.max_abs_diff:.2g} on {_CHECK_ROWS} samples"


def export_onnx(model: Any, sample: np.ndarray, path: Path, *, opset: int = 17) -> ExportCheck:
    """Export ``model`` with input ``input`` and output ``output``, both with a dynamic batch axis; check it
    with ``onnx.checker``; compare onnxruntime's output with PyTorch's on ``sample`` rows."""
    import onnx
    import torch

    example = torch.from_numpy(np.ascontiguousarray(sample[:2], dtype=np.float32))
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and folding notes
            torch.onnx.export(
                model,
                (example,),
                str(path),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "N"}, OUTPUT_NAME: {0: "N"}},
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    except Exception as exc:
        raise OptimizeError(
            "export",
            f"PyTorch could not export the model to ONNX opset {opset}: {_first_line(exc)}",
            hint="an operator with no ONNX form must be replaced in the model, or try another --opset.",
        ) from exc
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        raise OptimizeError("export", f"the exported model fails onnx.checker: {_first_line(exc)}") from exc
    return _compare(model, sample[:_CHECK_ROWS], path)


def _compare(model: Any, rows: np.ndarray, path: Path) -> ExportCheck:
    import onnxruntime as ort
    import torch

    rows = np.ascontiguousarray(rows, dtype=np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(rows))
    expected = (expected[0] if isinstance(expected, (tuple, list)) else expected).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {INPUT_NAME: rows})[0]
    if got.shape != expected.shape:
        raise OptimizeError("export", f"ONNX gives shape {list(got.shape)}, PyTorch {list(expected.shape)}.")
    diff = float(np.abs(got - expected).max())
    scale = float(np.abs(expected).max()) or 1.0
    if diff > _TOLERANCE * scale:
        raise OptimizeError(
            "export",
            f"the ONNX model's outputs differ from PyTorch's by up to {diff:.3g} (outputs reach {scale:.3g}).",
            hint="a layer may behave differently in training mode; the model is exported in eval mode.",
        )
    return ExportCheck(diff, scale)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
