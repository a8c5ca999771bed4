"""The Coral Edge TPU on the LiteRT backend, without an Edge TPU: the ``*_edgetpu.tflite`` naming recorded at
``models add``, and what real LiteRT does with an Edge-TPU-compiled model when the delegate is missing (it
cannot run the model's ``edgetpu-custom-op`` on the CPU: a ModelLoadError that says how to fix it). The model
is a hand-built .tflite whose one operator is a custom op named as edgetpu_compiler names its own."""

from __future__ import annotations

import logging
from pathlib import Path

import flatbuffers
import pytest

from lanai.backends import BackendOptions
from lanai.backends.litert import EDGETPU_DELEGATE, edgetpu_compiled, edgetpu_options
from lanai.errors import ModelLoadError

pytest.importorskip("ai_edge_litert")

from lanai.backends.litert import LiteRTBackend  # noqa: E402


def custom_op_tflite(op: str) -> bytes:
    """A .tflite (schema v3) of one custom operator ``op`` from a float [1, 4] input to a float [1, 4] output."""
    b = flatbuffers.Builder(1024)
    b.ForceDefaults(True)  # every field written, zeros included

    def ints(values: list[int]) -> int:
        b.StartVector(4, len(values), 4)
        for v in reversed(values):
            b.PrependInt32(v)
        return b.EndVector()

    def tables(offsets: list[int]) -> int:
        b.StartVector(4, len(offsets), 4)
        for o in reversed(offsets):
            b.PrependUOffsetTRelative(o)
        return b.EndVector()

    def table(*slots: tuple[str, int, int]) -> int:  # (kind, slot, value)
        b.StartObject(max(slot for _, slot, _ in slots) + 1)
        for kind, slot, value in slots:
            {"ref": b.PrependUOffsetTRelativeSlot, "u32": b.PrependUint32Slot, "i32": b.PrependInt32Slot,
             "i8": b.PrependInt8Slot}[kind](slot, value, 0)  # fmt: skip
        return b.EndObject()

    names = [b.CreateString(n) for n in ("input", "output")]
    shapes = [ints([1, 4]) for _ in names]
    # Tensor: shape 0, type 1 (FLOAT32 = 0), buffer 2, name 3
    tensors = [table(("ref", 0, s), ("i8", 1, 0), ("u32", 2, 0), ("ref", 3, n)) for n, s in zip(names, shapes)]
    operator = table(("u32", 0, 0), ("ref", 1, ints([0])), ("ref", 2, ints([1])))  # opcode, inputs, outputs
    subgraph = table(("ref", 0, tables(tensors)), ("ref", 1, ints([0])), ("ref", 2, ints([1])),
                     ("ref", 3, tables([operator])))  # fmt: skip
    custom = b.CreateString(op)  # OperatorCode: deprecated_builtin_code 0, custom_code 1, version 2, builtin 3
    opcode = table(("i8", 0, 32), ("ref", 1, custom), ("i32", 2, 1), ("i32", 3, 32))  # 32: CUSTOM
    b.StartObject(1)
    empty = b.EndObject()
    model = table(("u32", 0, 3), ("ref", 1, tables([opcode])), ("ref", 2, tables([subgraph])),
                  ("ref", 4, tables([empty])))  # fmt: skip
    b.Finish(model, file_identifier=b"TFL3")
    return bytes(b.Output())


@pytest.fixture
def compiled(tmp_path: Path) -> Path:
    path = tmp_path / "mobilenet_v2_quant_edgetpu.tflite"
    path.write_bytes(custom_op_tflite("edgetpu-custom-op"))
    return path


def test_the_name_convention() -> None:
    assert edgetpu_compiled("mobilenet_v2_1.0_224_quant_edgetpu.tflite")
    assert edgetpu_compiled("SSD_EDGETPU.TFLITE")
    assert not edgetpu_compiled("mobilenet_v2_1.0_224_quant.tflite")
    assert not edgetpu_compiled("edgetpu.tflite") and not edgetpu_compiled("model_edgetpu.onnx")


def test_models_add_records_the_delegate() -> None:
    wanted = {"decoder": "ssd", "delegates": [EDGETPU_DELEGATE]}
    assert edgetpu_options("m_edgetpu.tflite", {"decoder": "ssd"}) == wanted
    assert edgetpu_options("m.tflite", {}) == {}
    mine = {"delegates": ["/opt/coral/libedgetpu.so.1"]}
    assert edgetpu_options("m_edgetpu.tflite", mine) == mine  # the user's own choice stands


def test_without_the_delegate_a_compiled_model_is_a_clear_load_error(
    compiled: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING), pytest.raises(ModelLoadError) as caught:
        LiteRTBackend.load(compiled, BackendOptions(extra={"delegates": [EDGETPU_DELEGATE]}))
    assert "compiled for the Coral Edge TPU" in caught.value.message
    assert "libedgetpu1-std" in (caught.value.hint or "") and "edgetpu_compiler" in (caught.value.hint or "")
    assert f"delegate {EDGETPU_DELEGATE} is not available" in caplog.text
    assert "runs on the CPU: none of its delegates" in caplog.text


def test_an_unnamed_delegate_is_tried_when_the_model_needs_it(compiled: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING), pytest.raises(ModelLoadError, match="Edge TPU"):
        LiteRTBackend.load(compiled, BackendOptions())  # as models add's inspector loads it: no delegates named
    assert f"delegate {EDGETPU_DELEGATE} is not available" in caplog.text


def test_another_custom_op_keeps_the_plain_error(tmp_path: Path) -> None:
    path = tmp_path / "other.tflite"
    path.write_bytes(custom_op_tflite("MyOwnOp"))
    with pytest.raises(ModelLoadError, match="unresolved custom op: MyOwnOp") as caught:
        LiteRTBackend.load(path, BackendOptions())
    assert "Edge TPU" not in caught.value.message
