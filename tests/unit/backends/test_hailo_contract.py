"""The hailo backend against a stand-in ``hailo_platform`` (tests/standins/hailo_platform: written from
Hailo's documentation of the HailoRT Python API, not Hailo's code). This checks the calls lanai makes and
the order it makes them in, against the documented API; it does not show that a real Hailo-8L runs a real
HEF (docs/hardware/hailo.md says how to check that on a Pi)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lanai.backends import BackendOptions, backend_class
from lanai.errors import BackendUnavailable, BadInput, ModelLoadError

STANDINS = Path(__file__).resolve().parents[2] / "standins"


@pytest.fixture
def hailo(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The stand-in on sys.path for this test only, its call log empty, and a fresh device owner."""
    from lanai.backends import hailo as backend

    monkeypatch.syspath_prepend(str(STANDINS))
    monkeypatch.delitem(sys.modules, "hailo_platform", raising=False)
    import hailo_platform

    hailo_platform.CALLS.clear()
    hailo_platform.OPEN_DEVICES.clear()
    monkeypatch.setattr(backend, "DEVICE", backend.DeviceOwner())
    yield hailo_platform
    sys.modules.pop("hailo_platform", None)


def hef(folder: Path, name: str, inputs: list[dict[str, Any]], outputs: list[dict[str, Any]]) -> Path:
    path = folder / f"{name}.hef"
    path.write_text(json.dumps({"inputs": inputs, "outputs": outputs}), encoding="utf-8")
    return path


@pytest.fixture
def classifier(tmp_path: Path) -> Path:
    return hef(tmp_path, "classifier", [{"name": "cls/input", "shape": [8, 8, 3], "type": "UINT8"}],
               [{"name": "cls/logits", "shape": [5], "type": "UINT8", "scale": 0.5, "zero": 10}])  # fmt: skip


@pytest.fixture
def detector(tmp_path: Path) -> Path:
    return hef(tmp_path, "detector", [{"name": "det/input", "shape": [16, 16, 3], "type": "UINT8"}],
               [{"name": "det/boxes", "shape": [4, 4], "type": "UINT8", "scale": 2.0, "zero": 0},
                {"name": "det/scores", "shape": [4, 2], "type": "UINT16", "scale": 0.25, "zero": 0}])  # fmt: skip


def load(path: Path, **extra: Any) -> Any:
    return backend_class("hailo").load(path, BackendOptions(extra=extra))


def test_one_device_with_the_scheduler_is_shared_by_two_models(hailo: Any, classifier: Path, detector: Path) -> None:
    first, second = load(classifier), load(detector)
    devices = [call for call in hailo.CALLS if call[0] == "VDevice"]
    assert devices == [("VDevice", hailo.HailoSchedulingAlgorithm.ROUND_ROBIN)]
    assert len(hailo.OPEN_DEVICES) == 1
    first.close()
    assert hailo.OPEN_DEVICES and ("release",) not in hailo.CALLS  # the detector still uses it
    second.close()
    assert hailo.CALLS[-1] == ("release",) and not hailo.OPEN_DEVICES
    third = load(classifier)  # a later model opens it again
    assert len(hailo.OPEN_DEVICES) == 1
    third.close()
    assert not hailo.OPEN_DEVICES


def test_calls_follow_the_documented_order(hailo: Any, classifier: Path) -> None:
    model = load(classifier, batch_size=2)
    model.run({"cls/input": np.full((2, 8, 8, 3), 30, np.uint8)})
    model.close()
    path = str(classifier)
    names = [call[0] for call in hailo.CALLS]
    assert names == ["HEF", "VDevice", "create_infer_model", "set_batch_size", "set_format_type", "set_format_type",
                     "configure", "create_bindings", "create_bindings", "run", "shutdown", "release"]  # fmt: skip
    assert ("set_batch_size", path, 2) in hailo.CALLS
    assert ("set_format_type", path, "cls/input", hailo.FormatType.UINT8) in hailo.CALLS
    assert ("set_format_type", path, "cls/logits", hailo.FormatType.FLOAT32) in hailo.CALLS
    assert ("run", path, 2, 10_000) in hailo.CALLS  # a batch is one run of one binding per row
    assert not any("activate" in name for name in names)  # the scheduler activates, never the application


def test_specs_from_the_hef_with_a_batch_axis(hailo: Any, classifier: Path, detector: Path) -> None:
    model = load(detector)
    assert [(s.name, s.datatype, s.shape) for s in model.inputs] == [("det/input", "UINT8", (-1, 16, 16, 3))]
    assert [(s.name, s.datatype, s.shape) for s in model.outputs] == [
        ("det/boxes", "FP32", (-1, 4, 4)), ("det/scores", "FP32", (-1, 4, 2))]  # fmt: skip
    assert model.max_batch_size == 0 and model.platform == "hailo_hef"
    assert "Hailo" in model.execution_provider and model.runtime_version == "HailoRT 4.20.0-standin"
    native = load(classifier, output_format="native")
    assert [(s.datatype, s.shape) for s in native.outputs] == [("UINT8", (-1, 5))]
    model.close()
    native.close()


def test_outputs_dequantised_by_hailort_or_kept_quantised(hailo: Any, classifier: Path) -> None:
    rows = np.stack([np.full((8, 8, 3), 30, np.uint8), np.full((8, 8, 3), 50, np.uint8)])
    floats = load(classifier)
    out = floats.run({"cls/input": rows})["cls/logits"]
    assert out.dtype == np.float32 and out.shape == (2, 5)
    assert out[:, 0].tolist() == [30.0, 50.0]
    raw = load(classifier, output_format="native")
    quantised = raw.run({"cls/input": rows})["cls/logits"]
    assert quantised.dtype == np.uint8 and quantised[:, 0].tolist() == [70, 110]  # value / 0.5 + 10
    floats.close()
    raw.close()


def test_inputs_converted_to_the_stream_type(hailo: Any, classifier: Path) -> None:
    model = load(classifier)
    out = model.run({"cls/input": np.full((1, 8, 8, 3), 299.6, np.float32)})["cls/logits"]
    assert out[0, 0] == 255.0  # rounded and clipped into uint8
    as_float = load(classifier, input_format="float32")
    assert as_float.inputs[0].datatype == "FP32"
    assert ("set_format_type", str(classifier), "cls/input", hailo.FormatType.FLOAT32) in hailo.CALLS
    model.close()
    as_float.close()


def test_bad_inputs_and_outputs_subset(hailo: Any, detector: Path) -> None:
    model = load(detector)
    with pytest.raises(BadInput, match="missing"):
        model.run({})
    with pytest.raises(BadInput, match=r"\[N, 16, 16, 3\]"):
        model.run({"det/input": np.zeros((1, 8, 8, 3), np.uint8)})
    out = model.run({"det/input": np.zeros((3, 16, 16, 3), np.uint8)}, ["det/scores"])
    assert list(out) == ["det/scores"] and out["det/scores"].shape == (3, 4, 2)
    model.close()
    model.close()  # twice is harmless and releases once
    assert not hailo.OPEN_DEVICES


def test_on_chip_nms_is_refused_and_the_device_not_held(hailo: Any, tmp_path: Path) -> None:
    path = hef(tmp_path, "yolo", [{"name": "in", "shape": [8, 8, 3], "type": "UINT8"}],
               [{"name": "nms", "shape": [80, 5, 100], "type": "FLOAT32", "order": "HAILO_NMS_BY_CLASS"}])  # fmt: skip
    with pytest.raises(ModelLoadError, match="NMS"):
        load(path)
    assert not hailo.OPEN_DEVICES


def test_a_file_that_is_not_a_hef(hailo: Any, tmp_path: Path) -> None:
    path = tmp_path / "broken.hef"
    path.write_bytes(b"\x00not a hef")
    with pytest.raises(ModelLoadError, match="cannot read broken.hef"):
        load(path)
    assert not hailo.OPEN_DEVICES


def test_without_hailort_the_error_says_how_to_install(monkeypatch: pytest.MonkeyPatch, classifier: Path) -> None:
    monkeypatch.setitem(sys.modules, "hailo_platform", None)  # import fails as without HailoRT
    with pytest.raises(BackendUnavailable) as caught:
        load(classifier)
    assert "not on PyPI" in (caught.value.hint or "") and "hailo-all" in (caught.value.hint or "")


def test_the_check_to_run_on_a_pi(hailo: Any, detector: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lanai.backends.hailo import main

    assert main([str(detector)]) == 0
    out = capsys.readouterr().out
    assert "HailoRT 4.20.0-standin" in out and "input det/input UINT8 [-1, 16, 16, 3]" in out
    assert "ran: det/scores float32 [2, 4, 2]" in out and out.rstrip().splitlines()[-1].startswith("ok: 2 frames")
    assert not hailo.OPEN_DEVICES
    assert main([str(detector.with_name("missing.hef"))]) == 1
    assert "cannot read missing.hef" in capsys.readouterr().err


def test_models_add_takes_a_hef_as_a_classifier(hailo: Any, classifier: Path, tmp_path: Path) -> None:
    """`lanai models add model.hef --task infer` picks the hailo backend from the suffix and stores the version
    (its trial load in a child process cannot see the stand-in: an import error there is the real load's to
    report, and the real load, here, meets the stand-in); the image tasks accept the backend."""
    from lanai.cli import main
    from lanai.store import Store
    from lanai.tasks import get_task

    home = tmp_path / "home"
    assert main(["models", "--home", str(home), "add", str(classifier), "--name", "chip", "--task", "infer"]) == 0
    manifest = Store(home).manifest("chip")
    assert manifest.backend == "hailo" and manifest.task == "infer"
    assert all("hailo" in get_task(task).backends for task in ("classify", "detect", "infer", "embed-image"))
