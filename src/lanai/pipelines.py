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

A step that fails or runs out of time ends the run: the answer keeps every earlier step's result and
says which step failed and why. Only a bad input to the first step (say, a corrupt image) fails the
request as a whole, the same way the classify endpoint would.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lanai.errors import BadInput, ConfigError, LanaiError
from lanai.store.names import validate_name

if TYPE_CHECKING:
    from lanai.host import Host

__all__ = ["Pipeline", "Step", "read_pipeline", "load_pipelines", "run_pipeline", "PIPELINE_TASKS"]

log = logging.getLogger(__name__)

PIPELINE_TASKS = ("classify", "chat", "completion")
_REFERENCE = re.compile(r"\{([a-zA-Z0-9_-]+)\.([a-zA-Z0-9_]+)\}")


@dataclass(frozen=True)
class Step:
    name: str
    model: str
    task: str
    prompt: str = ""
    system: str = ""
    max_tokens: int = 64
    temperature: float = 0.0
    top_k: int = 5
    timeout_s: float = 30.0


@dataclass(frozen=True)
class Pipeline:
    name: str
    steps: tuple[Step, ...]


@dataclass
class StepResult:
    name: str
    status: str
    """ok, error or timeout."""
    output: dict[str, Any] | None = None
    error: str | None = None
    ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "status": self.status, "ms": round(self.ms, 3)}
        if self.output is not None:
            body["output"] = self.output
        if self.error is not None:
            body["error"] = self.error
        return body


@dataclass
class PipelineResult:
    pipeline: str
    steps: list[StepResult] = field(default_factory=list)

    @property
    def failed_step(self) -> str | None:
        return next((s.name for s in self.steps if s.status != "ok"), None)

    def to_dict(self) -> dict[str, Any]:
        failed = self.failed_step
        return {
            "pipeline": self.pipeline,
            "status": "ok" if failed is None else "partial",
            "failed_step": failed,
            "steps": [s.to_dict() for s in self.steps],
        }


def parse_pipeline(name: str, data: dict[str, Any]) -> Pipeline:
    """A pipeline from its TOML table; ConfigError says what is wrong with it."""
    raw_steps = data.get("step")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ConfigError(f"pipeline {name!r} has no [[step]] tables.", hint="see lanai/pipelines.py for an example.")
    steps: list[Step] = []
    known = set(Step.__dataclass_fields__)
    for i, raw in enumerate(raw_steps):
        where = f"pipeline {name!r}, step {i + 1}"
        unknown = set(raw) - known
        if unknown:
            raise ConfigError(f"{where} has unknown keys: {', '.join(sorted(unknown))}.")
        try:
            step = Step(**raw)
        except TypeError as exc:
            raise ConfigError(f"{where}: {exc}.", hint="every step needs name, model and task.") from None
        if step.task not in PIPELINE_TASKS:
            raise ConfigError(f"{where}: task {step.task!r} is not one of {', '.join(PIPELINE_TASKS)}.")
        if step.task == "classify" and i != 0:
            raise ConfigError(f"{where}: only the first step can take the image.", hint="move the classify step first.")
        if step.task != "classify" and not step.prompt:
            raise ConfigError(f"{where}: a {step.task} step needs a prompt.")
        earlier = {s.name for s in steps}
        if step.name in earlier:
            raise ConfigError(f"{where}: the name {step.name!r} is used twice.")
        for ref, _ in _REFERENCE.findall(step.prompt + step.system):
            if ref not in earlier:
                raise ConfigError(f"{where}: the prompt quotes {{{ref}.…}}, which is not an earlier step.")
        steps.append(step)
    return Pipeline(name, tuple(steps))


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


async def run_pipeline(host: Host, pipeline: Pipeline, image: bytes) -> PipelineResult:
    """Run every step; stop at the first that fails. Raises only for a bad input to the first step."""
    result = PipelineResult(pipeline.name)
    outputs: dict[str, dict[str, Any]] = {}
    for index, step in enumerate(pipeline.steps):
        start = time.perf_counter()
        try:
            output = await asyncio.wait_for(_run_step(host, step, image, outputs), step.timeout_s)
        except asyncio.TimeoutError:
            result.steps.append(StepResult(step.name, "timeout", error=f"no answer within {step.timeout_s:g} s",
                                           ms=(time.perf_counter() - start) * 1e3))  # fmt: skip
            break
        except LanaiError as exc:
            if index == 0 and isinstance(exc, BadInput):
                raise
            result.steps.append(StepResult(step.name, "error", error=str(exc), ms=(time.perf_counter() - start) * 1e3))
            break
        outputs[step.name] = output
        result.steps.append(StepResult(step.name, "ok", output, ms=(time.perf_counter() - start) * 1e3))
    return result


async def _run_step(host: Host, step: Step, image: bytes, outputs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if step.task == "classify":
        return (await host.classify(step.model, image, step.top_k)).to_dict()
    from lanai.backends.llamacpp import Sampling
    from lanai.generation import GenerateRequest

    prompt = _fill(step.prompt, outputs)
    if step.task == "chat":
        messages = ([{"role": "system", "content": _fill(step.system, outputs)}] if step.system else []) + [
            {"role": "user", "content": prompt}
        ]
        tokens = host.chat_tokens(step.model, messages)
    else:
        tokens = host.text_tokens(step.model, prompt)
    generation = host.generate(step.model, GenerateRequest(tokens, step.max_tokens, Sampling(step.temperature)))
    texts, last = [], None
    try:
        async for chunk in generation:
            texts.append(chunk.text)
            last = chunk
    finally:
        generation.cancel()  # on a timeout, free the slot
    if last is not None and last.error:
        raise LanaiError(last.error)
    usage = last.usage if last is not None else None
    return {
        "model": step.model,
        "prompt": prompt,
        "text": "".join(texts).strip(),
        "finish_reason": last.finish_reason if last is not None else None,
        "completion_tokens": usage.completion_tokens if usage else 0,
    }


def _fill(template: str, outputs: dict[str, dict[str, Any]]) -> str:
    def value(match: re.Match[str]) -> str:
        step, key = match.groups()
        found = outputs.get(step, {}).get(key)
        if found is None:
            raise LanaiError(f"the prompt quotes {{{step}.{key}}}, but step {step!r} has no {key!r}.")
        return f"{found:.3f}" if isinstance(found, float) else str(found)

    return _REFERENCE.sub(value, template)
