"""Pipelines' answers as wire values: the list of pipelines and the result of running one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from lanai.protocol.health import FailedModel
from lanai.protocol.wire import Wire, doc

__all__ = ["StepResult", "PipelineResult", "PipelineStepInfo", "PipelineInfo", "PipelineList"]


@dataclass(frozen=True)
class StepResult(Wire):
    """One step that ran."""

    name: str = doc("The step's name.")
    status: Literal["ok", "error", "timeout"] = doc("How it ended.")
    ms: float = doc("How long it took.")
    output: dict[str, Any] | None = doc(
        "A classify step's Classification (as the task returns it), or a chat step's "
        "{model, prompt, text, finish_reason, completion_tokens}.",
        default=None,
        omit_none=True,
    )
    error: str | None = doc("Why it failed.", default=None, omit_none=True)


@dataclass(frozen=True)
class PipelineResult(Wire):
    """Every step that ran, in order; a failed or timed-out step is the last."""

    pipeline: str = doc("The pipeline's name.")
    status: Literal["ok", "partial"] = doc("partial: a step after the first failed; the earlier results stand.")
    failed_step: str | None = doc("The step that failed, if one did.")
    steps: tuple[StepResult, ...] = doc("The steps that ran.")

    @classmethod
    def of(cls, pipeline: str, steps: list[StepResult]) -> PipelineResult:
        failed = next((s.name for s in steps if s.status != "ok"), None)
        return cls(pipeline, "ok" if failed is None else "partial", failed, tuple(steps))


@dataclass(frozen=True)
class PipelineStepInfo(Wire):
    """A step of a pipeline."""

    name: str = doc("The step's name.")
    model: str = doc("The model it runs.")
    task: str = doc("The task it runs.")


@dataclass(frozen=True)
class PipelineInfo(Wire):
    """A pipeline."""

    name: str = doc("The pipeline's name.")
    steps: tuple[PipelineStepInfo, ...] = doc("Its steps, in order.")


@dataclass(frozen=True)
class PipelineList(Wire):
    """The pipelines in the store, and the files that could not be read."""

    pipelines: tuple[PipelineInfo, ...] = doc("The pipelines that can run.")
    failed: tuple[FailedModel, ...] = doc("Files that could not be read, with the reason.")

    @classmethod
    def of(cls, pipelines: Mapping[str, Any], failed: Mapping[str, str]) -> PipelineList:
        """From ``lanai.pipelines.Pipeline`` values (name, steps of name, model, task) and the errors."""
        infos = tuple(
            PipelineInfo(p.name, tuple(PipelineStepInfo(s.name, s.model, s.task) for s in p.steps))
            for p in pipelines.values()
        )
        return cls(infos, tuple(FailedModel(name, error) for name, error in failed.items()))
