"""INT8 quantisation with onnxruntime: static QDQ for convolutional models, dynamic for linear ones.

Static quantisation fixes every activation's range from calibration samples and stores the model in QDQ
form with per-channel int8 weights and uint8 activations (onnxruntime's choice for x86 and ARM). Dynamic
quantisation stores int8 weights and measures activation ranges at run time: right for MatMul-heavy
models (transformers, MLPs), but onnxruntime runs its ConvInteger kernels slower than float convolutions
on CPU, so for a convolutional model it usually makes the model smaller *and slower*.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lanai.errors import OptimizeError
from lanai.optimize.choices import CALIBRATIONS, METHODS, MODES

__all__ = ["QuantizeConfig", "RECIPES", "model_kind", "choose_mode", "pre_process", "quantize"]

log = logging.getLogger(__name__)

_CONV = {"Conv", "ConvTranspose"}
_LINEAR = {"MatMul", "Gemm"}
DYNAMIC_CONV_WARNING = (
    "dynamic quantisation of a convolutional model: onnxruntime runs its ConvInteger kernels slower than "
    "float convolutions on CPU, so this model will likely get smaller but slower; --quantize static "
    "(with calibration samples) is the usual choice for CNNs."
)


@dataclass(frozen=True)
class QuantizeConfig:
    mode: str = "auto"
    method: str = "auto"
    """Calibration for static quantisation: minmax, percentile (99.999), entropy, or auto (see RECIPES)."""
    samples: int = 256
    """Calibration samples to use at most."""
    keep_float_ends: bool = False
    """Leave the first convolution and the last dense layer in float (often where INT8 hurts most)."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise OptimizeError("quantize", f"unknown mode {self.mode!r}.", hint=f"use one of {', '.join(MODES)}.")
        if self.method not in CALIBRATIONS:
            raise OptimizeError(
                "quantize",
                f"unknown calibration method {self.method!r}.",
                hint=f"use one of {', '.join(CALIBRATIONS)}.",
            )


RECIPES = (
    QuantizeConfig("static", "minmax"),
    QuantizeConfig("static", "percentile"),
    QuantizeConfig("static", "minmax", keep_float_ends=True),
    QuantizeConfig("static", "percentile", keep_float_ends=True),
)
"""What ``--calibration-method auto`` tries, simplest first; a later one must score strictly better."""


def model_kind(path: Path) -> str:
    """``conv`` when the model has convolutions, ``linear`` when it only has MatMul/Gemm layers."""
    import onnx

    ops = {node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node}
    if ops & _CONV:
        return "conv"
    if ops & _LINEAR:
        return "linear"
    raise OptimizeError(
        "quantize", "the model has no Conv, MatMul or Gemm layer to quantise.", hint="skip --quantize for it."
    )


def choose_mode(mode: str, kind: str) -> tuple[str, list[str]]:
    """The mode to use and any warnings: ``auto`` picks static for conv models, dynamic for linear ones."""
    if mode == "auto":
        return ("static" if kind == "conv" else "dynamic"), []
    if mode == "dynamic" and kind == "conv":
        return mode, [DYNAMIC_CONV_WARNING]
    return mode, []


def quantize(
    start: Path, target: Path, mode: str, calibration: np.ndarray | None, config: QuantizeConfig, *, prepared: bool
) -> str:
    """Write the INT8 model of ``start`` (``pre_process``'s result; ``prepared`` says whether that worked)
    to ``target``; return a one-line description of what was done."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    try:
        # onnxruntime's calibrators print their progress; keep stdout for the report
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            if mode == "dynamic":
                quantize_dynamic(str(start), str(target), weight_type=QuantType.QInt8)
                return "dynamic INT8 (int8 weights, activation ranges measured at run time)"
            if calibration is None or len(calibration) == 0:
                raise OptimizeError(
                    "quantize",
                    "static quantisation needs calibration samples.",
                    hint="pass --calibration (or --train) data, or use --quantize dynamic.",
                )
            from onnxruntime.quantization import CalibrationMethod

            samples = calibration[: config.samples]
            quantize_static(
                str(start),
                str(target),
                _reader(_input_name(start), samples),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                reduce_range=False,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod[METHODS[config.method]],
                nodes_to_exclude=_end_nodes(start) if config.keep_float_ends else None,
                extra_options={"CalibPercentile": 99.999} if config.method == "percentile" else {},
            )
    except OptimizeError:
        raise
    except Exception as exc:
        raise OptimizeError(
            "quantize",
            f"onnxruntime could not quantise the model: {str(exc).splitlines()[0] if str(exc) else exc!r}",
            hint="try the other --quantize mode, or skip quantisation for this model.",
        ) from exc
    steps = "quant_pre_process, then " if prepared else ""
    ends = ", first Conv and last dense layer kept in float" if config.keep_float_ends else ""
    return (
        f"static INT8 QDQ ({steps}per-channel int8 weights, uint8 activations, "
        f"{config.method} calibration on {len(samples)} samples{ends})"
    )


def _end_nodes(path: Path) -> list[str]:
    """The first Conv and the last Gemm/MatMul: the layers most sensitive to INT8 in a classifier."""
    import onnx

    nodes = onnx.load(str(path), load_external_data=False).graph.node
    convs = [n.name for n in nodes if n.op_type in _CONV]
    dense = [n.name for n in nodes if n.op_type in _LINEAR]
    return convs[:1] + dense[-1:]


def pre_process(source: Path, target: Path) -> tuple[Path, bool]:
    """onnxruntime's recommended preparation (shape inference, graph optimisation) of ``source`` into
    ``target``, done once for every recipe tried: the model to quantise, and whether preparing worked
    (if it did not, ``source`` is quantised as it is)."""
    return (target, True) if _pre_process(source, target) else (source, False)


def _pre_process(source: Path, target: Path) -> bool:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    for skip_symbolic in (False, True):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                quant_pre_process(str(source), str(target), skip_symbolic_shape=skip_symbolic)
            return True
        except Exception as exc:  # a model onnxruntime's shape inference cannot follow: quantise as is
            log.debug("quant_pre_process (skip_symbolic_shape=%s) failed: %s", skip_symbolic, exc)
    return False


def _input_name(path: Path) -> str:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    initialisers = {init.name for init in graph.initializer}
    return next(i.name for i in graph.input if i.name not in initialisers)


def _reader(name: str, samples: np.ndarray) -> object:
    """An onnxruntime ``CalibrationDataReader`` that feeds ``samples`` one at a time."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):  # type: ignore[misc]  # onnxruntime has no type stubs
        def __init__(self) -> None:
            self._feeds: Iterator[dict[str, np.ndarray]] = (
                {name: np.ascontiguousarray(s[np.newaxis], dtype=np.float32)} for s in samples
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._feeds, None)

    return Reader()
