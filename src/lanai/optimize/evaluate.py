"""What every step of the pipeline is judged by: accuracy on the validation set, size and speed.

Every model is measured as an ONNX file on onnxruntime's CPU provider with the server's settings (a
request on an idle model gets every core), so the figures of different steps compare like for like.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lanai.backends import BackendOptions
from lanai.backends.onnx import OnnxBackend
from lanai.errors import OptimizeError
from lanai.optimize.choices import METRICS
from lanai.optimize.data import Dataset

__all__ = ["Accuracy", "Speed", "Model", "METRICS", "resolve_metric", "accuracy", "measure_speed", "count_parameters"]

_THROUGHPUT_BATCH = 8
_QDQ_PARAMS = {"QuantizeLinear": (1, 2), "DequantizeLinear": (1, 2)}  # scale and zero point inputs


class Model:
    """An ONNX file loaded for evaluation: its single input, and outputs for any batch of samples."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.backend = OnnxBackend.load(self.path, BackendOptions(providers=("cpu",)))
        if len(self.backend.inputs) != 1:
            names = ", ".join(spec.name for spec in self.backend.inputs)
            raise OptimizeError(
                "evaluate",
                f"{self.path.name} has {len(self.backend.inputs)} inputs ({names}); lanai optimize "
                "handles models with one input.",
            )
        self.input = self.backend.inputs[0]
        self.output = self.backend.outputs[0].name
        self._dtype = np.uint8 if self.input.datatype == "UINT8" else np.float32

    def check(self, data: Dataset, what: str) -> None:
        """Refuse samples whose shape does not fit the model's input, naming both shapes."""
        want = self.input.shape[1:]
        got = data.x.shape[1:]
        if len(want) != len(got) or any(w not in (-1, g) for w, g in zip(want, got)):
            raise OptimizeError(
                "data",
                f"the {what} samples have shape {list(got)}, but {self.path.name} takes "
                f"{list(want)} per sample (-1: any size).",
                hint="check the data's layout (NCHW or NHWC) and size against the model.",
            )

    def predict(self, x: np.ndarray, batch: int = 64) -> np.ndarray:
        """The first output for every sample of ``x``."""
        x = x.astype(self._dtype, copy=False)
        parts = [self.backend.run({self.input.name: x[i : i + batch]})[self.output] for i in range(0, len(x), batch)]
        return np.concatenate(parts)

    def close(self) -> None:
        self.backend.close()


@dataclass(frozen=True)
class Accuracy:
    """How well one step does on the validation set, in percent; ``metric`` says against what."""

    metric: str
    value: float | None
    top5: float | None = None


@dataclass(frozen=True)
class Speed:
    size_bytes: int
    parameters: int
    latency_p50_ms: float
    latency_p95_ms: float
    throughput: float
    """Samples per second at batch 8."""


def resolve_metric(metric: str, data: Dataset, outputs: np.ndarray) -> str:
    """``auto`` → ``top1`` for a labelled classifier, ``agreement`` for an unlabelled one; a model whose
    output is not one score per class needs an explicit metric."""
    if metric not in METRICS:
        raise OptimizeError("evaluate", f"unknown metric {metric!r}.", hint=f"use one of {', '.join(METRICS)}.")
    classifier = outputs.ndim == 2 and outputs.shape[1] >= 2
    if metric == "auto":
        if not classifier:
            raise OptimizeError(
                "evaluate",
                f"the model's output has shape {list(outputs.shape)}, not [samples, classes], so "
                "lanai cannot tell how to score it.",
                hint="pass --metric fidelity (closeness to the original model's outputs) or --metric none.",
            )
        return "top1" if data.labelled else "agreement"
    if metric in ("top1", "agreement") and not classifier:
        raise OptimizeError(
            "evaluate",
            f"--metric {metric} needs a classifier ([samples, classes] output), not shape {list(outputs.shape)}.",
            hint="use --metric fidelity.",
        )
    if metric == "top1" and not data.labelled:
        raise OptimizeError(
            "evaluate", "--metric top1 needs a labelled validation set (y).", hint="use --metric agreement."
        )
    return metric


def accuracy(metric: str, outputs: np.ndarray, data: Dataset, reference: np.ndarray) -> Accuracy:
    """Score ``outputs`` (of the validation samples) by ``metric``; ``reference`` are the original model's."""
    if metric == "none":
        return Accuracy(metric, None)
    if metric == "fidelity":  # mean cosine similarity with the original's outputs, in percent
        a = outputs.reshape(len(outputs), -1).astype(np.float64)
        b = reference.reshape(len(reference), -1).astype(np.float64)
        cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
        return Accuracy(metric, float(cos.mean() * 100))
    if metric == "agreement":
        return Accuracy(metric, float((outputs.argmax(1) == reference.argmax(1)).mean() * 100))
    assert data.y is not None
    top5 = np.argsort(-outputs, axis=1)[:, :5]
    return Accuracy(
        metric,
        float((top5[:, 0] == data.y).mean() * 100),
        float((top5 == data.y[:, None]).any(axis=1).mean() * 100),
    )


def measure_speed(model: Model, sample: np.ndarray, seconds: float = 2.0) -> Speed:
    """Latency at batch 1 (p50, p95) and throughput at batch 8, each for about ``seconds / 2``."""
    one = sample[:1]
    batch = np.concatenate([sample] * (-(-_THROUGHPUT_BATCH // len(sample))))[:_THROUGHPUT_BATCH]
    for _ in range(3):  # warm-up: first runs allocate
        model.predict(one)
        model.predict(batch, batch=_THROUGHPUT_BATCH)
    times: list[float] = []
    stop = time.perf_counter() + seconds / 2
    while time.perf_counter() < stop or len(times) < 10:
        start = time.perf_counter()
        model.predict(one)
        times.append(time.perf_counter() - start)
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds / 2 or runs < 3:
        model.predict(batch, batch=_THROUGHPUT_BATCH)
        runs += 1
    throughput = runs * _THROUGHPUT_BATCH / (time.perf_counter() - start)
    times.sort()
    return Speed(
        size_bytes=model.path.stat().st_size,
        parameters=count_parameters(model.path),
        latency_p50_ms=statistics.median(times) * 1e3,
        latency_p95_ms=times[min(len(times) - 1, int(len(times) * 0.95))] * 1e3,
        throughput=throughput,
    )


def count_parameters(path: Path) -> int:
    """Elements of the model's weights: every initializer except quantisation scales and zero points."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    skip = set()
    for node in graph.node:
        for index in _QDQ_PARAMS.get(node.op_type, ()):
            if index < len(node.input):
                skip.add(node.input[index])
    return sum(int(np.prod(init.dims)) for init in graph.initializer if init.name not in skip)
