"""Golden inputs: a few real inputs, and what a model version answered to them when it was published.

``lanai push … --golden photo.jpg --golden other.jpg`` runs the version on each file and ships the inputs
with their answers as one more file of the artifact (``golden/golden.json``, covered by the signature).
A box that follows a channel runs them on the new version, loaded beside the one serving, and activates
it only if it answers the same: the top label for classifiers, the labels found for detectors, the text
for OCR, vectors within a cosine of 0.999 for encoders. A version whose answers differ on this box (a
broken conversion, another runtime, a different accelerator) never serves.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lanai.errors import BadInput, RegistryError

__all__ = ["SUPPORTED", "GoldenCase", "record", "check", "load", "dump", "made_here"]

ROLE = "golden"
FILENAME = "golden.json"
SUPPORTED = ("classify", "classify-text", "detect", "embed", "embed-image", "ocr")
_MIN_COSINE = 0.999
_DETECT_SCORE = 0.5


@dataclass(frozen=True)
class GoldenCase:
    name: str
    data: bytes
    expect: dict[str, Any]


def expectation(task: str, answer: dict[str, Any]) -> dict[str, Any]:
    """What of ``answer`` (a task result's JSON) must stay the same from version to version."""
    if task in ("classify", "classify-text"):
        return {"label": answer["predictions"][0]["label"]}
    if task == "detect":
        return {"labels": sorted(d["label"] for d in answer["detections"] if d["score"] >= _DETECT_SCORE)}
    if task in ("embed", "embed-image"):
        return {"embedding": [float(x) for x in answer["embedding"]]}
    if task == "ocr":
        return {"text": answer["text"]}
    raise BadInput(f"golden inputs are not made for {task} models.", hint=f"they are for {', '.join(SUPPORTED)}.")


def difference(task: str, expected: dict[str, Any], answer: dict[str, Any]) -> str | None:
    """None when ``answer`` matches ``expected``, else what differs."""
    if task in ("embed", "embed-image"):
        want, got = np.asarray(expected["embedding"], np.float64), np.asarray(answer["embedding"], np.float64)
        if want.shape != got.shape:
            return f"a vector of {got.size} values instead of {want.size}"
        cosine = float(want @ got / max(np.linalg.norm(want) * np.linalg.norm(got), 1e-12))
        return None if cosine >= _MIN_COSINE else f"cosine {cosine:.4f} to the published vector (< {_MIN_COSINE})"
    found = expectation(task, answer)
    if found == expected:
        return None
    return f"answered {_short(found)} where the published version answered {_short(expected)}"


def dump(task: str, cases: list[GoldenCase]) -> bytes:
    return json.dumps(
        {"task": task, "cases": [
            {"name": c.name, "data": base64.b64encode(c.data).decode(), "expect": c.expect} for c in cases]},
        indent=1,
    ).encode()  # fmt: skip


def load(path: Path) -> tuple[str, list[GoldenCase]]:
    try:
        document = json.loads(path.read_bytes())
        cases = [GoldenCase(str(c["name"]), base64.b64decode(c["data"]), dict(c["expect"])) for c in document["cases"]]
        return str(document["task"]), cases
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RegistryError(f"the golden inputs {path.name} cannot be read: {exc}") from None


async def record(plane: Any, model: Any, files: list[Path]) -> bytes:
    """Run ``model`` (loaded, from ``DataPlane.open_version``) on each file; the golden file's bytes."""
    task = model.info.task
    if task not in SUPPORTED:
        raise BadInput(f"golden inputs are not made for {task} models.", hint=f"they are for {', '.join(SUPPORTED)}.")
    cases = []
    for path in files:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise BadInput(f"cannot read the golden input {path}: {exc.strerror or exc}.") from None
        answer = (await plane.run_task_on(model, task, _input(task, data))).to_dict()
        cases.append(GoldenCase(path.name, data, expectation(task, answer)))
    return dump(task, cases)


async def check(plane: Any, model: Any, path: Path) -> list[str]:
    """Run the golden inputs at ``path`` on ``model``; what went wrong, one line per case ([] if all match)."""
    task, cases = load(path)
    problems = []
    for case in cases:
        try:
            answer = (await plane.run_task_on(model, task, _input(task, case.data))).to_dict()
        except Exception as exc:  # whatever the new version does wrong is a reason not to activate it
            problems.append(f"{case.name}: failed: {exc}")
            continue
        different = difference(task, case.expect, answer)
        if different:
            problems.append(f"{case.name}: {different}")
    return problems


def _input(task: str, data: bytes) -> bytes | str:
    return data.decode("utf-8") if task in ("classify-text", "embed") else data


def _short(value: dict[str, Any]) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) < 120 else text[:117] + "..."


def made_here(store: Any, settings: Any, name: str, version: int | None, files: list[Path]) -> bytes:
    """The golden file for ``name`` at ``version`` (None: the active one): the version loaded here, as the
    server would load it, run on ``files`` (blocking: it runs its own event loop)."""
    import asyncio

    from lanai.dataplane import DataPlane

    plane = DataPlane(store, settings)

    async def run() -> bytes:
        model = await plane.open_version(name, version or store.manifest(name).version)
        try:
            return await record(plane, model, files)
        finally:
            await model.close(settings.shutdown_timeout)

    return asyncio.run(run())
