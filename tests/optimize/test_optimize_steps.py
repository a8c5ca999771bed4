"""Each optimisation step on real models and data, and the errors a user gets when a step cannot run."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lanai.errors import OptimizeError
from lanai.optimize import DistilStep, Plan, QuantizeConfig, TrainConfig, optimize
from lanai.optimize.data import load_dataset
from lanai.optimize.evaluate import Model
from lanai.optimize.fold import fold_preprocessing, to_pixels
from lanai.optimize.quantize import DYNAMIC_CONV_WARNING, choose_mode, model_kind
from lanai.store import Store
from lanai.types import ImagePreprocess

from support import tiny_logits, write_tiny_classifier

pytest.importorskip("torch", reason="lanai optimize needs the optimize extra: pip install -e '.[test]'")

DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits" / "models.py"
NETS = Path(__file__).resolve().parent / "nets.py"
GREY_8 = ImagePreprocess(resize=8, crop=8, mean=(0.0,) * 3, std=(255.0,) * 3, color="L")


def teacher_plan(digits: Path, out: Path, **changes: object) -> Plan:
    plan = Plan(
        name="digits", model=f"{DIGITS}:teacher", weights=digits / "teacher.pt", validation=digits / "val.npz",
        train=digits / "train.npz", labels=digits / "labels.txt", preprocess=GREY_8, quantize=None, out=out,
        measure_seconds=0.05,
    )  # fmt: skip
    return replace(plan, **changes)  # type: ignore[arg-type]


def test_folded_preprocessing_gives_the_same_answers_on_raw_pixels(tmp_path: Path) -> None:
    source = write_tiny_classifier(tmp_path / "tiny.onnx")
    spec = ImagePreprocess(resize=8, crop=8, mean=(120.0, 110.0, 100.0), std=(60.0, 50.0, 40.0))
    pixels = np.random.default_rng(1).integers(0, 256, (4, 3, 8, 8), dtype=np.uint8)
    mean, std = np.array(spec.mean, np.float32)[:, None, None], np.array(spec.std, np.float32)[:, None, None]
    floats = ((pixels - mean) * (1 / std)).astype(np.float32)
    served = fold_preprocessing(source, tmp_path / "folded.onnx", spec)
    assert served == replace(spec, dtype="uint8")
    folded = Model(tmp_path / "folded.onnx")
    assert folded.input.datatype == "UINT8" and folded.input.name == "input"
    np.testing.assert_allclose(folded.predict(pixels), tiny_logits(floats), rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(to_pixels(floats, spec), pixels)


def test_fold_refuses_a_model_that_takes_pixels_already(tmp_path: Path) -> None:
    source = write_tiny_classifier(tmp_path / "tiny.onnx")
    fold_preprocessing(source, tmp_path / "once.onnx", ImagePreprocess())
    with pytest.raises(OptimizeError, match="fold: the model's input is not float32"):
        fold_preprocessing(tmp_path / "once.onnx", tmp_path / "twice.onnx", ImagePreprocess())


def test_auto_quantisation_is_static_for_convolutions_and_dynamic_for_matmuls(tmp_path: Path, digits: Path) -> None:
    assert model_kind(write_tiny_classifier(tmp_path / "tiny.onnx")) == "linear"
    assert choose_mode("auto", "linear") == ("dynamic", [])
    assert choose_mode("auto", "conv") == ("static", [])
    assert choose_mode("dynamic", "conv") == ("dynamic", [DYNAMIC_CONV_WARNING])


def test_dynamic_quantisation_of_a_cnn_is_done_but_warned_about(digits: Path, tmp_path: Path) -> None:
    plan = teacher_plan(digits, tmp_path / "out", quantize=QuantizeConfig("dynamic"), max_drop=100.0)
    outcome = optimize(plan, None)
    quantized = outcome.report.steps[-1]
    assert quantized.step == "quantize" and quantized.description.startswith("dynamic INT8")
    assert quantized.notes == (DYNAMIC_CONV_WARNING,)
    assert "slower" in (tmp_path / "out" / "report.md").read_text()


def test_an_onnx_model_with_no_labels_is_judged_by_agreement(tmp_path: Path) -> None:
    source = write_tiny_classifier(tmp_path / "tiny.onnx")
    x = np.random.default_rng(2).standard_normal((64, 3, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "val.npz", x=x)
    plan = Plan(
        name="tiny", model=str(source), validation=tmp_path / "val.npz", out=tmp_path / "out", measure_seconds=0.05
    )
    store = Store(tmp_path / "home")
    outcome = optimize(plan, store)
    original, quantized = outcome.report.steps
    assert outcome.report.metric == "agreement" and original.accuracy.value == 100.0
    assert quantized.description.startswith("dynamic INT8") and quantized.accuracy.value >= 90.0
    assert outcome.manifest is not None and outcome.manifest.version == 1
    assert store.list()[0].active is None  # stored, but not active without --activate


def test_distillation_needs_a_pytorch_model(tmp_path: Path) -> None:
    source = write_tiny_classifier(tmp_path / "tiny.onnx")
    np.savez(tmp_path / "val.npz", x=np.zeros((4, 3, 8, 8), np.float32), y=np.zeros(4, np.int64))
    plan = Plan(name="tiny", model=str(source), validation=tmp_path / "val.npz", distil=DistilStep("x.py:y"),
                out=tmp_path / "out", measure_seconds=0.05)  # fmt: skip
    with pytest.raises(OptimizeError, match="distil: this step needs the PyTorch model") as caught:
        optimize(plan, None)
    assert "package.module:factory" in str(caught.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model": f"{NETS}:spectrum"}, "export: PyTorch could not export the model to ONNX opset 17: .*fft"),
        ({"model": f"{NETS}:embedder", "weights": None}, "evaluate: the model's output has shape \\[360, 4, 8, 8\\]"),
        ({"model": f"{NETS}:not_a_module", "weights": None}, "load: .* returned str, not a torch.nn.Module"),
        ({"model": f"{NETS}:missing", "weights": None}, "load: .* has no attribute 'missing'"),
        ({"model": "teacher.pt", "weights": None}, "load: .*teacher.pt is not a TorchScript file"),
        ({"model": f"{DIGITS}:student"}, "load: the weights in .* do not fit"),
    ],
)
def test_models_it_cannot_handle_get_an_error_naming_the_step(
    digits: Path, tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    if changes.get("model") == "teacher.pt":
        changes["model"] = str(digits / "teacher.pt")  # a state dict, not TorchScript
    if "spectrum" in str(changes.get("model")):
        changes["weights"] = None
    with pytest.raises(OptimizeError, match=message):
        optimize(teacher_plan(digits, tmp_path / "out", **changes), None)


def test_a_torchscript_file_is_a_model_too(digits: Path, tmp_path: Path) -> None:
    import warnings

    import torch

    from lanai.optimize.export import load_torch_model

    teacher = load_torch_model(f"{DIGITS}:teacher", digits / "teacher.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(teacher, torch.zeros(2, 1, 8, 8)), str(tmp_path / "teacher.ts"))
    plan = teacher_plan(digits, tmp_path / "out", model=str(tmp_path / "teacher.ts"), weights=None)
    via_script = optimize(plan, None).report.steps[0]
    via_factory = optimize(teacher_plan(digits, tmp_path / "out2"), None).report.steps[0]
    assert via_script.accuracy == via_factory.accuracy and via_script.accuracy.value >= 97.0


def test_data_that_does_not_fit_gets_an_error_naming_both_shapes(digits: Path, tmp_path: Path) -> None:
    np.savez(tmp_path / "wide.npz", x=np.zeros((10, 1, 16, 16), np.float32), y=np.zeros(10, np.int64))
    with pytest.raises(OptimizeError, match=r"data: the training samples have shape \[1, 16, 16\], the validation"):
        optimize(teacher_plan(digits, tmp_path / "out", train=tmp_path / "wide.npz"), None)
    with pytest.raises(
        OptimizeError, match=r"original: the model does not take the validation samples \(shape \[1, 16"
    ):
        optimize(teacher_plan(digits, tmp_path / "out", validation=tmp_path / "wide.npz", train=None), None)
    np.savez(tmp_path / "nox.npz", images=np.zeros((3, 1, 8, 8)))
    with pytest.raises(OptimizeError, match="has no array named 'x' \\(it has: images\\)"):
        load_dataset(tmp_path / "nox.npz")


def test_a_labelled_image_folder_is_read_with_the_model_preprocessing(digits: Path) -> None:
    labels = (digits / "labels.txt").read_text().split()
    data = load_dataset(digits / "val-images", GREY_8, labels)
    reference = np.load(digits / "val.npz")
    assert data.x.shape == reference["x"].shape and data.y is not None
    assert sorted(data.y.tolist()) == sorted(reference["y"].tolist())
    with pytest.raises(OptimizeError, match="no preprocessing is known"):
        load_dataset(digits / "val-images")


def test_ctrl_c_leaves_no_model_and_no_store_version(digits: Path, tmp_path: Path) -> None:
    def interrupt(what: str, done: int, total: int, note: str) -> None:
        if done == 2:
            raise KeyboardInterrupt

    plan = teacher_plan(digits, tmp_path / "out", distil=DistilStep(f"{DIGITS}:student", TrainConfig(epochs=5)))
    store = Store(tmp_path / "home")
    with pytest.raises(KeyboardInterrupt):
        optimize(plan, store, progress=interrupt)
    assert json.loads((tmp_path / "out" / "report.json").read_text())["status"] == "interrupted"
    assert not (tmp_path / "out" / "model.onnx").exists()
    assert [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")] == []  # work folder removed
    assert store.list() == []
