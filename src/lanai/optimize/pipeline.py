"""The optimisation pipeline: original → distil → prune → (export) → quantize → fold → a new store version.

Each step is optional, reads a model and writes a model. After every step the model is exported to
ONNX (PyTorch steps) and judged the same way (``evaluate``): accuracy on the validation set, size,
parameters, latency and throughput. A step that loses more than ``max_drop`` points against the step
before stops the run with the report written so far. Work happens in a temporary folder; only a run
that passes every step adds a version to the store, in one atomic publish, so neither a failure nor
Ctrl-C leaves anything half-written behind.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from lanai.errors import OptimizeError
from lanai.optimize.data import Dataset, load_dataset
from lanai.optimize.evaluate import Model, accuracy, measure_speed, resolve_metric
from lanai.optimize.fold import fold_preprocessing, to_pixels
from lanai.optimize.quantize import RECIPES, QuantizeConfig, choose_mode, model_kind, pre_process, quantize
from lanai.optimize.report import REPORT_FILES, Report, StepResult
from lanai.optimize.train import Progress, TrainConfig
from lanai.store import Manifest, Store
from lanai.store.labels import parse_labels
from lanai.types import ImagePreprocess

__all__ = ["Plan", "DistilStep", "PruneStep", "Outcome", "optimize"]

log = logging.getLogger(__name__)

Inspect = Callable[[Path], Any]


@dataclass(frozen=True)
class DistilStep:
    student: str
    """``package.module:function`` (or ``file.py:function``) returning the untrained student."""
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass(frozen=True)
class PruneStep:
    ratio: float
    """Share of the prunable channels to remove, e.g. 0.5."""
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=10))


@dataclass(frozen=True)
class Plan:
    """What to optimise, with what data, through which steps, and where the result goes."""

    name: str
    model: str
    """A PyTorch factory (``package.module:function``, with ``weights``), a TorchScript file, or an .onnx file."""
    validation: Path
    weights: Path | None = None
    train: Path | None = None
    calibration: Path | None = None
    """Samples for static quantisation; default: the training set, else the validation set."""
    labels: Path | None = None
    task: str = "classify"
    preprocess: ImagePreprocess | None = None
    distil: DistilStep | None = None
    prune: PruneStep | None = None
    quantize: QuantizeConfig | None = field(default_factory=QuantizeConfig)
    fold_preprocess: bool = False
    metric: str = "auto"
    max_drop: float = 1.0
    opset: int = 17
    activate: bool = False
    out: Path | None = None
    """Where the final model.onnx and the report go; default ``./lanai-optimize-<name>``."""
    measure_seconds: float = 2.0


@dataclass(frozen=True)
class Outcome:
    report: Report
    model: Path
    manifest: Manifest | None


def optimize(
    plan: Plan, store: Store | None, *, inspect: Inspect | None = None, progress: Progress | None = None
) -> Outcome:
    """Run ``plan``; with a store, the final model becomes its next version of ``plan.name``."""
    out = Path(plan.out or f"lanai-optimize-{plan.name}")
    out.mkdir(parents=True, exist_ok=True)
    labels = parse_labels(plan.labels.read_bytes(), source=str(plan.labels)) if plan.labels else []
    validation = load_dataset(plan.validation, plan.preprocess, labels)
    report = Report(plan.name, plan.metric, plan.max_drop, f"{len(validation)} samples of {validation.source}")
    with tempfile.TemporaryDirectory(prefix=".lanai-optimize-", dir=out) as tmp:
        run = _Run(plan, report, Path(tmp), validation, labels, progress)
        try:
            final, preprocess = run.steps()
            report.status = "passed"
            model = out / "model.onnx"
            shutil.copyfile(final, Path(tmp) / "model.onnx")
            os.replace(Path(tmp) / "model.onnx", model)  # never a half-written model.onnx
            manifest = None
            if store is not None:
                manifest = _register(store, plan, model, preprocess, report, Path(tmp), inspect)
                report.version = manifest.version
            report.write(out)
            return Outcome(report, model, manifest)
        except OptimizeError as exc:
            report.status, report.failure = "failed", str(exc)
            report.write(out)
            raise
        except KeyboardInterrupt:
            report.status = "interrupted"
            report.write(out)
            raise


class _Run:
    def __init__(
        self, plan: Plan, report: Report, work: Path, validation: Dataset, labels: list[str], progress: Progress | None
    ) -> None:
        self.plan = plan
        self.report = report
        self.work = work
        self.validation = validation
        self.labels = labels
        self.progress = progress
        self.reference: np.ndarray | None = None

    def steps(self) -> tuple[Path, ImagePreprocess | None]:
        plan = self.plan
        train = self._data(plan.train, "training")
        torch_model, current = self._original()
        if plan.distil or plan.prune:
            if torch_model is None:
                raise OptimizeError(
                    "distil" if plan.distil else "prune",
                    "this step needs the PyTorch model, not an ONNX file.",
                    hint="give --model package.module:factory with --weights.",
                )
            from lanai.optimize.distill import distill
            from lanai.optimize.prune import prune

            if plan.distil:
                log.info("distil: training %s against the teacher", plan.distil.student)
                torch_model = distill(
                    torch_model, plan.distil.student, train, plan.distil.train, progress=self.progress
                )
                current = self._torch_step(
                    "distil", torch_model, f"student {plan.distil.student}, {_training(plan.distil.train)}"
                )
            if plan.prune:
                log.info("prune: removing %.0f %% of the channels", plan.prune.ratio * 100)
                pruned = prune(torch_model, plan.prune.ratio, train, plan.prune.train, progress=self.progress)
                torch_model = pruned
                description = (
                    f"{plan.prune.ratio:.0%} of the channels removed (L2 norm, torch-pruning's dependency graph), "
                    f"fine-tuned with the unpruned model as teacher: {_training(plan.prune.train)}"
                )
                current = self._torch_step("prune", torch_model, description)
        if plan.quantize is not None:
            current = self._quantize(current, plan.quantize, train)
        preprocess = plan.preprocess
        if plan.fold_preprocess:
            if preprocess is None:
                raise OptimizeError("fold", "folding needs the preprocessing to fold.", hint="pass --preprocess.")
            folded = self.work / "fold.onnx"
            preprocess = fold_preprocessing(current, folded, preprocess)
            channels = preprocess.channels
            mean, std = list(preprocess.mean[:channels]), list(preprocess.std[:channels])
            description = f"input takes uint8 pixels; Cast → Sub(mean {mean}) → Mul(1/std {std}) in the graph"
            pixels = Dataset(to_pixels(self.validation.x, preprocess), self.validation.y, self.validation.source)
            current = self._add("fold", folded, description, data=pixels)
        return current, preprocess

    # -- steps ---------------------------------------------------------------------------------------

    def _original(self) -> tuple[Any, Path]:
        plan = self.plan
        if plan.model.endswith(".onnx") and ":" not in plan.model:
            source = Path(plan.model)
            if not source.is_file():
                raise OptimizeError("load", f"{source} does not exist.")
            path = self.work / "original.onnx"
            shutil.copyfile(source, path)
            return None, self._add("original", path, f"ONNX model {source.name}")
        from lanai.optimize.export import load_torch_model

        model = load_torch_model(plan.model, plan.weights)
        return model, self._torch_step("original", model, f"PyTorch model {plan.model}")

    def _torch_step(self, step: str, model: Any, description: str) -> Path:
        from lanai.optimize.export import export_onnx

        self._check_torch_input(model, step)
        path = self.work / f"{step}.onnx"
        check = export_onnx(model, self.validation.x, path, opset=self.plan.opset)
        return self._add(step, path, f"{description}; exported to ONNX opset {self.plan.opset} ({check.describe()})")

    def _quantize(self, current: Path, config: QuantizeConfig, train: Dataset | None) -> Path:
        mode, notes = choose_mode(config.mode, model_kind(current))
        for note in notes:
            log.warning("quantize: %s", note)
        calibration = self._data(self.plan.calibration, "calibration") or train or self.validation
        samples = calibration.x if mode == "static" else None
        target = self.work / "quantize.onnx"
        log.info("quantize: %s", mode)
        start, prepared = pre_process(current, self.work / "quantize-prepared.onnx")
        if mode == "dynamic" or config.method != "auto":
            description = quantize(start, target, mode, samples, replace(config, mode=mode), prepared=prepared)
            return self._add("quantize", target, description, notes=notes)
        best: tuple[float, Path, str] | None = None
        tried = []
        for i, recipe in enumerate(RECIPES):
            path = self.work / f"quantize-{i}.onnx"
            recipe = replace(recipe, samples=config.samples)
            description = quantize(start, path, mode, samples, recipe, prepared=prepared)
            score = self._score(path)
            tried.append(f"{_recipe_name(recipe)}: {score:.2f} %")
            if best is None or score > best[0]:
                best = (score, path, description)
        assert best is not None
        _, path, description = best
        notes = [*notes, f"calibration recipes tried, by validation {self.report.metric}: {'; '.join(tried)}"]
        return self._add("quantize", path, f"{description}; the best of {len(RECIPES)} recipes", notes=notes)

    def _score(self, path: Path) -> float:
        """The validation score of a candidate model, without measuring its speed."""
        assert self.reference is not None
        model = Model(path)
        try:
            value = accuracy(
                self.report.metric, model.predict(self.validation.x), self.validation, self.reference
            ).value
        finally:
            model.close()
        return -1.0 if value is None else value

    # -- judging -------------------------------------------------------------------------------------

    def _add(
        self, step: str, path: Path, description: str, *, data: Dataset | None = None, notes: Sequence[str] = ()
    ) -> Path:
        data = data or self.validation
        model = Model(path)
        try:
            model.check(data, "validation")
            outputs = model.predict(data.x)
            if self.reference is None:
                self.reference = outputs
                self.report.metric = resolve_metric(self.plan.metric, data, outputs)
            score = accuracy(self.report.metric, outputs, data, self.reference)
            speed = measure_speed(model, data.x[:8], self.plan.measure_seconds)
        finally:
            model.close()
        previous = self.report.steps[-1] if self.report.steps else None
        drop = None
        if previous is not None and score.value is not None and previous.accuracy.value is not None:
            drop = previous.accuracy.value - score.value
        self.report.steps.append(StepResult(step, description, score, speed, drop, tuple(notes)))
        log.info(
            "%s: %s %s, %d bytes, %.3f ms at batch 1",
            step,
            score.metric,
            "-" if score.value is None else f"{score.value:.2f} %",
            speed.size_bytes,
            speed.latency_p50_ms,
        )
        if drop is not None and drop > self.plan.max_drop:
            assert previous is not None and previous.accuracy.value is not None and score.value is not None
            raise OptimizeError(
                step,
                f"{self.report.metric} fell from {previous.accuracy.value:.2f} % to {score.value:.2f} % "
                f"({drop:.2f} points, more than --max-drop {self.plan.max_drop:g}).",
                hint=_gate_hint(step),
            )
        return path

    # -- helpers -------------------------------------------------------------------------------------

    def _data(self, path: Path | None, what: str) -> Dataset | None:
        if path is None:
            return None
        data = load_dataset(path, self.plan.preprocess, self.labels)
        if data.x.shape[1:] != self.validation.x.shape[1:]:
            raise OptimizeError(
                "data",
                f"the {what} samples have shape {list(data.x.shape[1:])}, the validation samples "
                f"{list(self.validation.x.shape[1:])}.",
                hint="every data set must be in the model's input layout.",
            )
        return data

    def _check_torch_input(self, model: Any, step: str) -> None:
        import torch

        try:
            with torch.no_grad():
                model(torch.from_numpy(np.ascontiguousarray(self.validation.x[:2], dtype=np.float32)))
        except Exception as exc:
            raise OptimizeError(
                step,
                f"the model does not take the validation samples (shape {list(self.validation.x.shape[1:])}): "
                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                hint="check the data's layout (NCHW or NHWC) and size against the model.",
            ) from exc


def _training(config: TrainConfig) -> str:
    return f"{config.epochs} epochs, lr {config.lr:g}, T {config.temperature:g}, alpha {config.alpha:g}"


def _recipe_name(recipe: QuantizeConfig) -> str:
    return recipe.method + (" with float ends" if recipe.keep_float_ends else "")


def _gate_hint(step: str) -> str:
    return {
        "distil": "train longer (--distil-epochs), pick a larger student, or allow more with --max-drop.",
        "prune": "prune less (--prune 0.3), fine-tune longer (--prune-epochs), or allow more with --max-drop.",
        "quantize": "give more (or more typical) calibration samples, or try --quantize dynamic.",
    }.get(step, "allow more with --max-drop, or skip this step.")


def _register(
    store: Store,
    plan: Plan,
    model: Path,
    preprocess: ImagePreprocess | None,
    report: Report,
    work: Path,
    inspect: Inspect | None,
) -> Manifest:
    from lanai.bundled import inspector

    files = report.write(work / "report")
    attachments = {REPORT_FILES[name]: path for name, path in files.items()}
    final = report.steps[-1]
    provenance = {
        "optimized_from": plan.model,
        "steps": [s.step for s in report.steps],
        "metric": report.metric,
        "accuracy": final.accuracy.value if final.accuracy.value is not None else "not measured",
        "validation": report.validation,
    }
    return store.add(
        model,
        name=plan.name,
        task=plan.task,
        inspect=inspect or inspector("onnx"),
        labels=plan.labels,
        preprocess=preprocess,
        provenance=provenance,
        attachments=attachments,
        activate=plan.activate,
    )
