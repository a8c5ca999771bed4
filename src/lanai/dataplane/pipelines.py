"""Running a pipeline on the data plane: the first step takes the request's input; later steps prompt
language models with earlier results, run text tasks on earlier text, or black a redaction out on the
pages an OCR step read (see ``lanai.pipelines`` for the file format)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from lanai.errors import BadInput, LanaiError, Overloaded
from lanai.pipelines import BLACKOUT, Pipeline, PipelineResult, Step, StepResult, fill

if TYPE_CHECKING:
    from lanai.dataplane.plane import DataPlane

__all__ = ["run_pipeline"]


async def run_pipeline(plane: DataPlane, pipeline: Pipeline, data: bytes) -> PipelineResult:
    """Run every step; stop at the first that fails. Raises only when the first step cannot start: a bad
    input, or a full queue (nothing has run, and the client should retry: 503 with Retry-After)."""
    steps: list[StepResult] = []
    outputs: dict[str, dict[str, Any]] = {}
    for index, step in enumerate(pipeline.steps):
        start = time.perf_counter()
        try:
            output = await asyncio.wait_for(_run_step(plane, pipeline, step, data, outputs), step.timeout_s)
        except asyncio.TimeoutError:
            steps.append(StepResult(step.name, "timeout", _ms(start), error=f"no answer within {step.timeout_s:g} s"))
            break
        except LanaiError as exc:
            if index == 0 and isinstance(exc, (BadInput, Overloaded)):
                raise
            steps.append(StepResult(step.name, "error", _ms(start), error=str(exc)))
            break
        outputs[step.name] = output
        steps.append(StepResult(step.name, "ok", _ms(start), output))
    return PipelineResult.of(pipeline.name, steps)


def _black_out(
    plane: DataPlane, step: Step, data: bytes, outputs: dict[str, dict[str, Any]], dpi: int
) -> dict[str, Any]:
    """The boxes of the redact step's spans on the OCR step's pages, and the pages blacked out (on a worker
    thread: it decodes and draws whole pages)."""
    from lanai.redaction.pages import black_out, map_spans, png_data_url
    from lanai.tasks.ocr.pages import read_pages

    ocr, found = outputs[step.ocr], outputs[step.spans]
    boxes = map_spans(ocr, found.get("entities", ()), step.padding)
    pages = read_pages(data, max_pixels=plane.settings.max_image_pixels, dpi=dpi)
    for page, read in zip(pages, ocr.get("pages", ())):
        if (page.width, page.height) != (read["width"], read["height"]):
            raise LanaiError(f"page {read['page']} is {page.width}×{page.height} now but was read at "
                             f"{read['width']}×{read['height']}: the boxes would not fit.")  # fmt: skip
    blacked = black_out(pages, boxes)
    return {"boxes": [box.to_dict() for box in boxes], "pages": [png_data_url(page) for page in blacked]}


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1e3, 3)


async def _run_step(
    plane: DataPlane, pipeline: Pipeline, step: Step, data: bytes, outputs: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    if step.task == BLACKOUT:
        dpi = next(int(s.params.get("dpi", 150)) for s in pipeline.steps if s.name == step.ocr)
        return await asyncio.to_thread(_black_out, plane, step, data, outputs, dpi)
    if step.task not in ("chat", "completion"):
        given = fill(step.input, outputs) if step.input else data  # a later step reads earlier text
        return (await plane.run_task(step.model, step.task, given, step.params)).to_dict()
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
