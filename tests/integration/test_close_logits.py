"""A classifier whose 1000 logits lie within 1e-7 of each other (as a model with random or tiny outputs
gives), classified over HTTP: the classes come back in the logits' order, with scores that fall with
them, where ranking float32 probabilities (all 0.001) gave classes 0–4."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np

from lanai.bundled import inspector
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.store import Store

from support import TINY_PREPROCESS, ServerThread

LOGITS = (np.random.default_rng(5).permutation(1000) * 1e-10).astype(np.float32)


def write_flat_classifier(path: Path) -> Path:
    """Whatever the image, the logits ``LOGITS`` (the input is read, then multiplied by nothing)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("ReduceSum", ["input", "axes"], ["total"], keepdims=0),  # [N]
        helper.make_node("Reshape", ["total", "shape"], ["column"]),  # [N, 1]
        helper.make_node("Mul", ["column", "zero"], ["nothing"]),
        helper.make_node("Add", ["nothing", "logits_row"], ["logits"]),  # [N, 1000]
    ]
    init = [
        numpy_helper.from_array(np.array([1, 2, 3], dtype=np.int64), "axes"),
        numpy_helper.from_array(np.array([-1, 1], dtype=np.int64), "shape"),
        numpy_helper.from_array(np.zeros((1,), np.float32), "zero"),
        numpy_helper.from_array(LOGITS.reshape(1, -1), "logits_row"),
    ]
    graph = helper.make_graph(nodes, "flat", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])], init)  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_close_logits_come_back_in_their_order(tmp_path: Path, photos: dict[str, bytes]) -> None:
    store = Store(tmp_path / "home")
    store.add(write_flat_classifier(tmp_path / "flat.onnx"), name="flat", task="classify",
              preprocess=TINY_PREPROCESS, inspect=inspector("onnx", "classify"))  # fmt: skip
    settings = Settings(home=store.root, grpc=False, discovery=False)
    with ServerThread(DataPlane(store, settings), settings) as url:
        answer = httpx.post(f"{url}/v1/models/flat/classify?top_k=10", files={"file": ("c.jpg", photos["chelsea"])})
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    expected = np.argsort(-LOGITS.astype(np.float64), kind="stable")[:10].tolist()
    assert [p["index"] for p in predictions] == expected and expected != list(range(10))
    scores = [p["score"] for p in predictions]
    assert scores == sorted(scores, reverse=True) and all(abs(s - 0.001) < 1e-6 for s in scores)
