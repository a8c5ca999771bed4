"""The canary child measures the memory one more batch row takes, and its marker keeps the figure."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

from lanai.backends import BackendOptions, canary
from lanai.bundled import bundled_model_dir

OPTIONS = BackendOptions(providers=("cpu",), intra_op_threads=1)


def test_a_fixed_row_model_reports_its_row_and_the_marker_keeps_it(tmp_path: Path) -> None:
    report = canary.check(bundled_model_dir() / "model.onnx", "onnx", OPTIONS, timeout=120)
    assert report["loaded"] and 2**19 < report["row_bytes"] < 2**23, report  # ~1.3 MB of activations a row
    canary.remember(tmp_path, "ab" * 32, "onnx", OPTIONS, report)
    assert canary.checked(tmp_path, "ab" * 32, "onnx", OPTIONS)
    assert canary.row_bytes(tmp_path, "ab" * 32, "onnx", OPTIONS) == report["row_bytes"]
    other = BackendOptions(providers=("cpu",), intra_op_threads=2)
    assert canary.row_bytes(tmp_path, "ab" * 32, "onnx", other) is None  # another key: not measured


def test_rows_of_no_fixed_shape_are_not_measured(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", "length"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "length"])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    report = canary.check(path, "onnx", OPTIONS, timeout=120)
    assert report["loaded"] and "row_bytes" not in report
    canary.remember(tmp_path, "cd" * 32, "onnx", OPTIONS, report)
    assert canary.checked(tmp_path, "cd" * 32, "onnx", OPTIONS)
    assert canary.row_bytes(tmp_path, "cd" * 32, "onnx", OPTIONS) is None
