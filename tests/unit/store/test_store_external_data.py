"""ONNX external data in the store: the data file is kept with the model and linked beside it to load;
a model naming data outside its own folder is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lanai.bundled import inspector
from lanai.errors import StoreError
from lanai.store import Store
from lanai.store.external import check_location, external_locations

onnx = pytest.importorskip("onnx")


def write_external_model(folder: Path, location: str = "model.onnx_data") -> Path:
    """A real ONNX model (x @ W) whose 64 KiB weight lives in an external data file."""
    from onnx import TensorProto, helper, numpy_helper

    weights = np.arange(128 * 128, dtype=np.float32).reshape(128, 128) / 1e4
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])], "ext",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 128])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 128])],
        [numpy_helper.from_array(weights, "W")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = folder / "model.onnx"
    onnx.save_model(model, path, save_as_external_data=True, location=location, size_threshold=0)
    return path


def test_external_data_is_stored_and_the_model_loads_from_the_store(tmp_path: Path) -> None:
    source = write_external_model(tmp_path)
    assert external_locations(source) == ["model.onnx_data"]
    store = Store(tmp_path / "store")
    manifest = store.add(source, name="ext", task="infer", inspect=inspector("onnx"))
    ref = manifest.files["external:model.onnx_data"]
    assert ref.filename == "model.onnx_data" and ref.size == 128 * 128 * 4
    (tmp_path / "model.onnx_data").unlink()  # the store has its own copy
    path = store.file_path(manifest, "model")
    assert (path.parent / "model.onnx_data").is_file()
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run(None, {"x": np.ones((1, 128), np.float32)})
    assert out[0].shape == (1, 128)
    store.remove("ext")
    assert not any((store.root / "linked").iterdir())  # gc takes the link folder too


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "a/../../b", "C:\\x", "~/x", ""])
def test_locations_outside_the_model_folder_are_refused(location: str) -> None:
    with pytest.raises(StoreError, match="outside"):
        check_location(location)


def test_a_model_pointing_outside_its_folder_is_not_imported(tmp_path: Path) -> None:
    inner = tmp_path / "inner"
    inner.mkdir()
    source = write_external_model(inner, location="data.bin")
    blob = source.read_bytes().replace(b"data.bin", b"../a.bin")  # same length: the protobuf stays valid
    source.write_bytes(blob)
    (tmp_path / "a.bin").write_bytes((inner / "data.bin").read_bytes())
    store = Store(tmp_path / "store")
    with pytest.raises(StoreError, match="outside"):
        store.add(source, name="evil", task="infer", inspect=inspector("onnx"))
    assert store.list() == []
