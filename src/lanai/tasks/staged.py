"""Staged tasks: one request, several models (e.g. OCR's detector, line classifier and recogniser).

A plain task turns a request into one job on its model's batcher. A staged task's model is one stored
version holding several model files, its **stages**, each loaded on its own backend behind its own
batcher; the task's work is a coroutine, :meth:`StagedTask.run`, that sends prepared rows to named
stages through the narrow :class:`Stages` interface and awaits their rows back. Rows from different
requests (and the many rows of one request, e.g. every text line of a page) share batches as plain
jobs do. The data plane implements ``Stages``; the task imports nothing of it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any, ClassVar, Protocol, TypeVar

from lanai.errors import BadInput, ModelLoadError
from lanai.tasks.base import P, R, Rows, Task, TaskModel
from lanai.types import ModelInfo

__all__ = ["StagedTask", "Stages", "parse_stage_labels"]

T = TypeVar("T")


class Stages(Protocol):
    """What a staged task sees of its loaded model while it runs one request."""

    def model(self, stage: str) -> TaskModel:
        """What the task sees of the stage's model (its signature, its labels, the server's limits)."""
        ...

    async def run(
        self, stage: str, prepare: Callable[[], Rows], key: Hashable, finish: Callable[[Rows], Rows] | None = None
    ) -> Rows:
        """One row through the stage's batcher, as a plain task's ``Job``: ``prepare()`` makes the row on
        the batch thread, rows with equal ``key`` may share a batch, ``finish`` turns the whole batch's
        outputs into per-row results there; returns this row's results."""
        ...

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on a worker thread: blocking work that belongs to no stage (e.g. reading pages)."""
        ...


class StagedTask(Task[P, R]):
    """A task whose model has several stages. The first stage is the version's ``model`` file; each other
    stage is the version's file of that role. ``stage_labels`` names, per stage, a file of the version
    read as that stage's labels (one per line, kept verbatim)."""

    stages: ClassVar[tuple[str, ...]]
    stage_labels: ClassVar[Mapping[str, str]] = {}

    def check(self, info: ModelInfo) -> None:
        super().check(info)
        self.check_stage(self.stages[0], TaskModel(info, (), None, 0))

    def check_stage(self, stage: str, model: TaskModel) -> None:
        """Raise ModelLoadError when ``model`` cannot serve as ``stage`` (checked at import and at load)."""
        if stage not in self.stages:
            raise ModelLoadError(f"task {self.name!r} has no stage {stage!r}.", hint=f"its stages: {self.stages}.")

    async def run(self, stages: Stages, data: Any, params: P) -> R:
        """The request ``data`` (what ``accepts`` says) with ``params``, through the stages."""
        raise BadInput(f"task {self.name!r} has no endpoint of its own.")


def parse_stage_labels(text: str) -> tuple[str, ...]:
    """A stage's labels file: one label per line, kept verbatim (a label may be a space or a '#')."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return tuple(line[:-1] if line.endswith("\r") else line for line in lines)
