"""Adding a staged model (several model files, one version: e.g. ocr's det, cls and rec) to the store, and
``lanai models add-ppocr``, which adds the PP-OCR models that the ``rapidocr`` package ships.

All the files of a staged model become one version, imported together: every stage is loaded and
checked before the version is published, and a server swaps versions whole (the old one serves until
the new one has loaded every stage), so a recogniser can never be paired with another model's
character set, nor a half-added model be served.
"""

from __future__ import annotations

import importlib.util
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lanai.errors import BadInput, ModelLoadError
from lanai.store import Manifest, Store
from lanai.tasks import get_task
from lanai.tasks.base import TaskModel
from lanai.tasks.staged import StagedTask, parse_stage_labels
from lanai.types import BatchingConfig, ModelInfo, TensorSpec

__all__ = ["add_staged", "add_ppocr", "parse_stage_files", "PPOCR_FILES", "find_ppocr"]

PPOCR_FILES = {
    "det": "PP-OCRv6_det_small.onnx",
    "cls": "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
    "rec": "PP-OCRv6_rec_small.onnx",
}
"""The PP-OCR models in ``rapidocr==3.10.0`` (Apache-2.0), by stage."""
_PPOCR_HINT = (
    "pip install 'rapidocr==3.10.0' (it ships the models), or fetch its wheel without installing it "
    "(pip download --no-deps rapidocr==3.10.0) and pass --from rapidocr-3.10.0-py3-none-any.whl"
)


def parse_stage_files(items: list[str]) -> dict[str, Path]:
    """``--stage cls=cls.onnx --stage rec=rec.onnx`` → {role: path}."""
    found: dict[str, Path] = {}
    for item in items:
        role, sep, path = item.partition("=")
        if not sep or not role.strip() or not path.strip():
            raise BadInput(f"--stage {item!r} is not STAGE=FILE.", hint="e.g. --stage rec=rec.onnx")
        found[role.strip()] = Path(path.strip())
    return found


def add_staged(
    store: Store, file: Path, *, name: str, task_name: str, files: Mapping[str, Path], backend: str = "onnx",
    batching: BatchingConfig | None = None, backend_options: dict[str, Any] | None = None,
    provenance: dict[str, Any] | None = None, activate: bool | None = None,
) -> Manifest:  # fmt: skip
    """Import ``file`` (the first stage) and ``files`` (the other stages, and files such as a recogniser's
    ``characters``, by role) as one version of ``name``; ModelLoadError if a stage does not fit."""
    task = get_task(task_name)
    if not isinstance(task, StagedTask):
        raise BadInput(f"task {task_name!r} has one model file; --stage is for staged tasks.")
    known = set(task.stages[1:]) | set(task.stage_labels.values())
    unknown = sorted(set(files) - known)
    missing = [stage for stage in task.stages[1:] if stage not in files]
    if unknown or missing:
        what = f"unknown --stage {', '.join(unknown)}" if unknown else f"no --stage for {', '.join(missing)}"
        files_hint = " ".join(f"--stage {s}=FILE" for s in task.stages[1:])
        raise BadInput(f"task {task_name} needs every stage: {what}.", hint=f"give FILE (the {task.stages[0]} "
                       f"model) {files_hint}; optional: {', '.join(task.stage_labels.values())}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="lanai-stages-") as tmp:
        attachments = dict(files)
        for stage, role in task.stage_labels.items():
            if role not in attachments:
                attachments[role] = _labels_from_metadata(files[stage], role, Path(tmp))
        return store.add(
            file, name=name, task=task_name, backend=backend, batching=batching, backend_options=backend_options,
            provenance={"source_file": str(Path(file).resolve()), **(provenance or {})},
            attachments=attachments, inspect=staged_inspector(task, backend, attachments), activate=activate,
        )  # fmt: skip


def _labels_from_metadata(model: Path, role: str, folder: Path) -> Path:
    """A stage's labels out of its ONNX metadata (PP-OCR recognisers keep theirs under ``character``)."""
    import onnxruntime as ort

    try:
        meta = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).get_modelmeta()
    except Exception as exc:  # onnxruntime raises several unrelated classes
        raise ModelLoadError(f"{model} does not load on onnxruntime: {exc}") from exc
    text = meta.custom_metadata_map.get("character")
    if not text:
        raise ModelLoadError(
            f"{model} carries no character list in its metadata.",
            hint=f"give the characters it was trained with, one per line: --stage {role}=keys.txt",
        )
    path = folder / f"{role}.txt"
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    return path


def staged_inspector(task: StagedTask, backend: str, files: Mapping[str, Path]):  # type: ignore[no-untyped-def]
    """The store's import hook: load the first stage's copy and every other stage's file, and check each
    against the task (with its labels), before anything is published."""
    from lanai.bundled import inspector

    first = inspector(backend, task.name)

    def inspect(path: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
        inputs, outputs = first(path)
        for stage in task.stages[1:]:
            stage_inputs, stage_outputs = inspector(backend)(files[stage])
            role = task.stage_labels.get(stage)
            labels = parse_stage_labels(files[role].read_text(encoding="utf-8")) if role else ()
            info = ModelInfo(files[stage].name, "0", task.name, backend, "", stage_inputs, stage_outputs, "cpu", 1)
            task.check_stage(stage, TaskModel(info, labels, None, 0))
        return inputs, outputs

    return inspect


def find_ppocr(source: Path | None, folder: Path) -> dict[str, Path]:
    """The three PP-OCR files by stage: from ``source`` (a folder holding them, or rapidocr's wheel, whose
    files are extracted into ``folder``), else from the installed ``rapidocr`` package."""
    if source is None:
        spec = importlib.util.find_spec("rapidocr")
        if spec is None or not spec.submodule_search_locations:
            raise BadInput("the rapidocr package is not installed, and no --from was given.", hint=_PPOCR_HINT)
        source = Path(next(iter(spec.submodule_search_locations))) / "models"
    if source.is_file() and zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as wheel:
            members = {Path(n).name: n for n in wheel.namelist()}
            for filename in PPOCR_FILES.values():
                if filename in members:
                    (folder / filename).write_bytes(wheel.read(members[filename]))
        source = folder
    if not source.is_dir():
        raise BadInput(f"{source} is neither a folder nor a wheel.", hint=_PPOCR_HINT)
    found = {stage: next(source.rglob(filename), None) for stage, filename in PPOCR_FILES.items()}
    missing = [PPOCR_FILES[stage] for stage, path in found.items() if path is None]
    if missing:
        raise BadInput(f"{source} does not hold {', '.join(missing)}.", hint=_PPOCR_HINT)
    return {stage: path for stage, path in found.items() if path is not None}


def add_ppocr(store: Store, *, name: str = "ocr", source: Path | None = None, activate: bool | None = None) -> Manifest:
    """Add rapidocr's PP-OCR det, cls and rec models as one version of the ocr model ``name``."""
    with tempfile.TemporaryDirectory(prefix="lanai-ppocr-") as tmp:
        files = find_ppocr(source, Path(tmp))
        return add_staged(
            store, files["det"], name=name, task_name="ocr", files={"cls": files["cls"], "rec": files["rec"]},
            provenance={"source": "PP-OCR models shipped by rapidocr (Apache-2.0)",
                        "files": {stage: path.name for stage, path in files.items()}},
            activate=activate,
        )  # fmt: skip
