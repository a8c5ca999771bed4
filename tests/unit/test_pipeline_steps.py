"""How a pipeline run ends when a step is refused, on a scripted plane (the pipelines over a real server
are tested in tests/integration/test_pipelines.py): a full queue at the first step is the request's 503,
nothing having run; a later step's refusal keeps what the earlier steps found."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lanai.dataplane.pipelines import run_pipeline
from lanai.errors import Overloaded
from lanai.pipelines import parse_pipeline

PIPELINE = parse_pipeline("look", {"step": [
    {"name": "first", "model": "first-model", "task": "classify"},
    {"name": "then", "model": "then-model", "task": "embed", "input": "{first.model}"},  # earlier text in
]})  # fmt: skip


class Answer:
    def __init__(self, model: str) -> None:
        self.model = model

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model}


class ScriptedPlane:
    """Answers run_task for every model but ``full``, whose queue is full."""

    def __init__(self, full: str) -> None:
        self.full = full
        self.ran: list[str] = []

    async def run_task(self, model: str, task: str, data: Any, params: Any) -> Answer:
        if model == self.full:
            raise Overloaded("the model's queue is full (1 requests waiting).", retry_after=2)
        self.ran.append(model)
        return Answer(model)


def test_a_full_queue_at_the_first_step_refuses_the_whole_request() -> None:
    plane = ScriptedPlane(full="first-model")
    with pytest.raises(Overloaded):
        asyncio.run(run_pipeline(plane, PIPELINE, b"image"))  # type: ignore[arg-type]
    assert plane.ran == []


def test_a_full_queue_at_a_later_step_keeps_the_earlier_result() -> None:
    plane = ScriptedPlane(full="then-model")
    result = asyncio.run(run_pipeline(plane, PIPELINE, b"image"))  # type: ignore[arg-type]
    assert plane.ran == ["first-model"]
    assert [(s.name, s.status) for s in result.steps] == [("first", "ok"), ("then", "error")]
    assert result.status == "partial" and "queue is full" in (result.steps[1].error or "")
