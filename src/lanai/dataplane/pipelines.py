"""Running a pipeline on the data plane: the first step takes the request's input, later steps prompt
language models with earlier results (see ``lanai.pipelines`` for the file format)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from lanai.errors import BadInput, LanaiError
from lanai.pipelines import Pipeline, PipelineResult, Step, StepResult, fill

if TYPE_CHECKING:
    from lanai.dataplane.plane import DataPlane

__all__ = ["run_pipeline"]


async def run_pipeline(plane: DataPlane, pipeline: Pipeline, data: bytes) -> PipelineResult:
    """Run every step; stop at the first that fails. Raises only for a bad input to the first step."""
    steps: list[StepResult] = []
    outputs: dict[str, dict[str, Any]] = {}
    for index, step in enumerate(pipeline.steps):
        start = time.perf_counter()
        try:
            output = await asyncio.wait_for(_run_step(plane, step, data, outputs), step.timeout_s)
        except asyncio.TimeoutError:
            steps.append(StepResult(step.name, "timeout", _ms(start), error=f"no answer within {step.timeout_s:g} s"))
            break
        except LanaiError as exc:
            if index == 0 and isinstance(exc, BadInput):
                raise
            steps.append(StepResult(step.name, "error", _ms(start), error=str(exc)))
            break
        outputs[step.name] = output
        steps.append(StepResult(step.name, "ok", _ms(start), output))
    return PipelineResult.of(pipeline.name, steps)


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1e3, 3)


async def _run_step(plane: DataPlane, step: Step, data: bytes, outputs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if step.task not in ("chat", "completion"):
        return (await plane.run_task(step.model, step.task, data, step.params)).to_dict()
    from lanai.backends.base import Sampling
    from lanai.generation import GenerateRequest

    prompt = fill(step.prompt, outputs)
    if step.task == "chat":
        messages = ([{"role": "system", "content": fill(step.system, outputs)}] if step.system else []) + [
            {"role": "user", "content": prompt}
        ]
        tokens = plane.chat_prompt(step.model, messages)
    else:
        tokens = plane.text_prompt(step.model, prompt)
    generation = plane.generate(step.model, GenerateRequest(tokens, step.max_tokens, Sampling(step.temperature)))
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
