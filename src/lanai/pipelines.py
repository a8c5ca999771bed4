"""Pipelines: several models in a row behind one request, declared in TOML files in the store.

``$LANAI_HOME/pipelines/<name>.toml`` holds the steps, run in order. The first step takes the request's
image; later steps are language-model prompts that may quote earlier results as ``{step.field}``:

    [[step]]
    name = "classify"
    model = "efficientnet-lite0"
    task = "classify"
    top_k = 3

    [[step]]
    name = "describe"
    model = "smol"
    task = "chat"
    system = "You are a helpful assistant."
    prompt = "Write one sentence about a photo of a {classify.label}."
    max_tokens = 48
    timeout_s = 20

A later step may also run a text task on an earlier step's text (``input = "{read.text}"``), and the
step ``task = "blackout"`` puts a redaction back onto the document's pages: given the OCR step and the
redact step that read its text (``ocr = "read"``, ``spans = "pii"``), it answers the boxes to black out
and the pages blacked out (PNG data URLs). The law office's pipeline, a scanned letter in, the letter
redacted out:

    [[step]]
    name = "read"
    model = "ocr"
    task = "ocr"

    [[step]]
    name = "kind"
    model = "doctype"
    task = "classify-text"
    input = "{read.text}"

    [[step]]
    name = "pii"
    model = "pii"
    task = "redact"
    input = "{read.text}"
    style = "tag"

    [[step]]
    name = "page"
    task = "blackout"
    ocr = "read"
    spans = "pii"

A step that fails or runs out of time ends the run: the answer keeps every earlier step's result and
says which step failed and why. Only a bad input to the first step (say, a corrupt image) fails the
request as a whole, the same way the classify endpoint would.

This module reads and checks pipeline files and holds the wire values of their answers; the data plane
runs them (``lanai.dataplane.pipelines``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lanai.errors import BadInput, ConfigError, LanaiError
from lanai.protocol.pipelines import PipelineList, PipelineResult, StepResult
from lanai.store.names import validate_name
from lanai.tasks import TASKS
from lanai.tasks.base import parse_params

__all__ = ["Pipeline", "Step", "read_pipeline", "load_pipelines", "fill", "PipelineResult", "StepResult",
           "PipelineList", "PROMPT_TASKS", "BLACKOUT"]  # fmt: skip

log = logging.getLogger(__name__)

PROMPT_TASKS = ("chat", "completion")
"""Tasks a later step may run: they take a prompt made from earlier results."""
BLACKOUT = "blackout"
"""The step that puts a redact step's spans back onto the pages an OCR step read."""
REFERENCE = re.compile(r"\{([a-zA-Z0-9_-]+)\.([a-zA-Z0-9_]+)\}")


@dataclass(frozen=True)
class Step:
    name: str
    model: str
    task: str
    prompt: str = ""
    system: str = ""
    max_tokens: int = 64
    temperature: float = 0.0
    timeout_s: float = 30.0
    input: str = ""
    """A later text step's text, made from earlier results (e.g. ``"{read.text}"``)."""
    ocr: str = ""
    """A blackout step's OCR step."""
    spans: str = ""
    """A blackout step's redact step."""
    padding: float = 2.0
    """How many pixels a blackout box reaches past its characters."""
    params: Mapping[str, Any] = field(default_factory=dict)
    """The step's task parameters (e.g. ``top_k = 3`` for classify), checked by the task."""


@dataclass(frozen=True)
class Pipeline:
    name: str
    steps: tuple[Step, ...]


def parse_pipeline(name: str, data: dict[str, Any]) -> Pipeline:
    """A pipeline from its TOML table; ConfigError says what is wrong with it."""
    raw_steps = data.get("step")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ConfigError(f"pipeline {name!r} has no [[step]] tables.", hint="see lanai/pipelines.py for an example.")
    steps: list[Step] = []
    known = set(Step.__dataclass_fields__) - {"params", "ocr", "spans", "padding"}  # those three: blackout's
    for i, raw in enumerate(raw_steps):
        where = f"pipeline {name!r}, step {i + 1}"
        step = _parse_step(where, i, raw, known)
        earlier = {s.name for s in steps}
        if step.name in earlier:
            raise ConfigError(f"{where}: the name {step.name!r} is used twice.")
        for ref, _ in REFERENCE.findall(step.prompt + step.system + step.input):
            if ref not in earlier:
                raise ConfigError(f"{where}: the step quotes {{{ref}.…}}, which is not an earlier step.")
        if step.task == BLACKOUT:
            _check_blackout(where, step, steps)
        steps.append(step)
    return Pipeline(name, tuple(steps))


def _check_blackout(where: str, step: Step, earlier: list[Step]) -> None:
    by_name = {s.name: s for s in earlier}
    ocr, spans = by_name.get(step.ocr), by_name.get(step.spans)
    if ocr is None or ocr.task != "ocr":
        raise ConfigError(f"{where}: ocr = {step.ocr!r} names no earlier ocr step.", hint='e.g. ocr = "read"')
    if spans is None or spans.task != "redact":
        raise ConfigError(f"{where}: spans = {step.spans!r} names no earlier redact step.", hint='e.g. spans = "pii"')
    if spans.input.strip() != f"{{{ocr.name}.text}}":
        raise ConfigError(
            f"{where}: the redact step {spans.name!r} must read the ocr step's own text, to place it on the page.",
            hint=f'give it input = "{{{ocr.name}.text}}".',
        )


def _parse_step(where: str, index: int, raw: dict[str, Any], known: set[str]) -> Step:
    if raw.get("task") == BLACKOUT:
        unknown = set(raw) - {"name", "task", "ocr", "spans", "padding", "timeout_s"}
        if unknown or "name" not in raw:
            raise ConfigError(f"{where}: a blackout step has name, ocr, spans and optionally padding and timeout_s.")
        if index == 0:
            raise ConfigError(f"{where}: a blackout step needs an ocr and a redact step before it.")
        try:
            return Step(**{k: v for k, v in raw.items()}, model="")
        except TypeError as exc:
            raise ConfigError(f"{where}: {exc}.") from None
    missing = [key for key in ("name", "model", "task") if key not in raw]
    if missing:
        raise ConfigError(f"{where} has no {', '.join(missing)}.", hint="every step needs name, model and task.")
    task = TASKS.get(str(raw.get("task")))
    if task is None or not (task.routed or task.name in PROMPT_TASKS):
        choices = [t.name for t in TASKS.values() if t.routed or t.name in PROMPT_TASKS] + [BLACKOUT]
        raise ConfigError(f"{where}: task {raw.get('task')!r} is not one of {', '.join(choices)}.")
    params = {k: v for k, v in raw.items() if k not in known}
    if params and (task.name in PROMPT_TASKS or set(params) - {f for f in task.params.__dataclass_fields__}):
        raise ConfigError(f"{where} has unknown keys: {', '.join(sorted(params))}.")
    try:
        step = Step(**{k: v for k, v in raw.items() if k in known}, params=params)
        parse_params(task.params, params, task=task.name)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}.", hint="every step needs name, model and task.") from None
    except BadInput as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if task.name not in PROMPT_TASKS and index != 0:
        if task.accepts != "text":
            raise ConfigError(
                f"{where}: only the first step can take the image.", hint=f"move the {task.name} step first."
            )
        if not step.input:
            raise ConfigError(f"{where}: a later {task.name} step needs an input made from earlier results.",
                              hint='e.g. input = "{read.text}"')  # fmt: skip
    elif step.input and index == 0:
        raise ConfigError(f"{where}: the first step takes the request; it has no input.")
    if task.name in PROMPT_TASKS and not step.prompt:
        raise ConfigError(f"{where}: a {task.name} step needs a prompt.")
    return step


def read_pipeline(name: str, text: str) -> Pipeline:
    """The pipeline ``name`` from the text of its TOML file; ConfigError (or InvalidName) says what is wrong."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    validate_name(name, "pipeline")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"pipeline {name!r} is not valid TOML: {exc}") from None
    return parse_pipeline(name, data)


def load_pipelines(folder: Path) -> tuple[dict[str, Pipeline], dict[str, str]]:
    """Every ``*.toml`` pipeline in ``folder``, and the errors of those that could not be read."""
    pipelines: dict[str, Pipeline] = {}
    failed: dict[str, str] = {}
    if not folder.is_dir():
        return pipelines, failed
    for path in sorted(folder.glob("*.toml")):
        name = path.stem
        try:
            pipelines[name] = read_pipeline(name, path.read_text(encoding="utf-8"))
        except (LanaiError, OSError, UnicodeDecodeError) as exc:
            failed[name] = str(exc)
            log.error("pipeline %s not loaded: %s", name, exc)
    return pipelines, failed


def fill(template: str, outputs: Mapping[str, Mapping[str, Any]]) -> str:
    """``template`` with each ``{step.field}`` replaced by that earlier step's output field."""

    def value(match: re.Match[str]) -> str:
        step, key = match.groups()
        found = outputs.get(step, {}).get(key)
        if found is None:
            raise LanaiError(f"the prompt quotes {{{step}.{key}}}, but step {step!r} has no {key!r}.")
        return f"{found:.3f}" if isinstance(found, float) else str(found)

    return REFERENCE.sub(value, template)
