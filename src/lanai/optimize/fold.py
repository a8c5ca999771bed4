"""Fold input normalisation into the graph, so the served model takes uint8 pixels directly.

The model's float input ``x`` becomes a uint8 input of the same name and shape, followed by
``Cast → Sub(mean) → Mul(1/std)``, the same arithmetic (in the same order) as lanai's own preprocessing.
Clients and the server then send a quarter of the bytes, and the server skips a float pass per image.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from lanai.errors import OptimizeError
from lanai.types import ImagePreprocess

__all__ = ["fold_preprocessing", "to_pixels"]


def fold_preprocessing(source: Path, target: Path, preprocess: ImagePreprocess) -> ImagePreprocess:
    """Write ``source`` with ``preprocess``'s normalisation folded in to ``target``; return the
    preprocessing the folded model needs (the same, with ``dtype`` uint8)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    initialisers = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initialisers]
    if len(inputs) != 1:
        raise OptimizeError("fold", f"the model has {len(inputs)} inputs; folding needs exactly one image input.")
    image = inputs[0]
    tensor_type = image.type.tensor_type
    if tensor_type.elem_type != TensorProto.FLOAT:
        raise OptimizeError("fold", "the model's input is not float32; is its preprocessing folded already?")
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor_type.shape.dim]
    channels = preprocess.channels
    axis = 1 if preprocess.layout == "NCHW" else 3
    if len(dims) != 4 or dims[axis] not in (-1, channels):
        raise OptimizeError(
            "fold",
            f"the input has shape {dims}, not an image batch with {channels} channel(s) in {preprocess.layout}.",
            hint="check --preprocess layout= and color= against the model.",
        )
    shape = [1, 1, 1, 1]
    shape[axis] = channels
    name = image.name
    cast, centred, normalised = f"{name}/float", f"{name}/centred", f"{name}/normalised"
    mean = np.asarray(preprocess.mean[:channels], np.float32).reshape(shape)
    scale = (1.0 / np.asarray(preprocess.std[:channels], np.float32)).reshape(shape)
    for node in graph.node:
        node.input[:] = [normalised if i == name else i for i in node.input]
    for output in graph.output:
        if output.name == name:
            raise OptimizeError("fold", "the model's input is also one of its outputs.")
    graph.initializer.extend(
        [numpy_helper.from_array(mean, f"{name}/mean"), numpy_helper.from_array(scale, f"{name}/scale")]
    )
    nodes = [
        helper.make_node("Cast", [name], [cast], to=TensorProto.FLOAT, name="lanai_fold_cast"),
        helper.make_node("Sub", [cast, f"{name}/mean"], [centred], name="lanai_fold_sub_mean"),
        helper.make_node("Mul", [centred, f"{name}/scale"], [normalised], name="lanai_fold_mul_scale"),
    ]
    for node in reversed(nodes):
        graph.node.insert(0, node)
    tensor_type.elem_type = TensorProto.UINT8
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise OptimizeError("fold", f"the folded model fails onnx.checker: {str(exc).splitlines()[0]}") from exc
    onnx.save(model, str(target))
    return replace(preprocess, dtype="uint8")


def to_pixels(x: np.ndarray, preprocess: ImagePreprocess) -> np.ndarray:
    """The uint8 pixels that ``preprocess`` turned into the float samples ``x`` (exact when ``x`` came
    from images; rounded otherwise)."""
    channels = preprocess.channels
    shape = (1, channels, 1, 1) if preprocess.layout == "NCHW" else (1, 1, 1, channels)
    mean = np.asarray(preprocess.mean[:channels], np.float32).reshape(shape)
    std = np.asarray(preprocess.std[:channels], np.float32).reshape(shape)
    return np.clip(np.rint(x * std + mean), 0, 255).astype(np.uint8)
