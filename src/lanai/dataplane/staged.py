"""Staged models: one stored version, several model files, each loaded on its own backend with its own
batcher, serving a staged task (``lanai.tasks.staged``); and the ``Stages`` a request runs through.

A version loads whole or not at all: every stage loads and passes its task's check before the data plane
swaps it in, so a version with a bad stage leaves the old version serving.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from lanai.backends import TensorBackend
from lanai.batching import Batcher
from lanai.config import Settings
from lanai.dataplane.models import (
    Observers,
    _all_threads,
    _backend_options,
    _effective_batching,
    _info,
    _instances,
    _load_backend,
    cpu_grant,
    sized_batching,
)
from lanai.dataplane.models import _Loaded as Loaded
from lanai.errors import ModelLoadError
from lanai.store import Manifest, Store
from lanai.tasks.base import Rows, TaskModel
from lanai.tasks.staged import StagedTask, parse_stage_labels
from lanai.types import ModelInfo

__all__ = ["Stage", "StagedModel", "open_staged_model", "PlaneStages"]

T = TypeVar("T")

_INNER_QUEUE_FACTOR = 64
"""Later stages take many rows per request (a page's lines): their queues hold this many times more."""


@dataclass
class Stage:
    """One stage of a loaded staged model."""

    name: str
    view: TaskModel
    backend: TensorBackend
    batcher: Batcher
    alone: TensorBackend | None = None
    """A second session with every core, for rows that find the stage idle (as for a plain model)."""

    async def close(self, timeout: float) -> None:
        await self.batcher.close(timeout)
        self.backend.close()
        if self.alone is not None:
            self.alone.close()


@dataclass
class StagedModel(Loaded):
    """One version of a staged model, loaded: its stages, in the task's order."""

    manifest: Manifest
    task: StagedTask
    info: ModelInfo
    """The first stage's signature, under the model's name and task."""
    stages: dict[str, Stage]
    loaded_at: float = field(default_factory=time.time)

    @property
    def queue_depth(self) -> int:
        return sum(stage.batcher.queue_depth for stage in self.stages.values())

    def batchers(self) -> list[Batcher]:
        return [stage.batcher for stage in self.stages.values()]

    async def close(self, timeout: float) -> None:
        await asyncio.gather(*(stage.close(timeout) for stage in self.stages.values()))


def open_staged_model(
    store: Store, manifest: Manifest, task: StagedTask, settings: Settings, observers: Observers
) -> StagedModel:
    """Load every stage of ``manifest`` (blocking: call it in a thread); ModelLoadError if one fails."""
    stages: dict[str, Stage] = {}
    try:
        for index, name in enumerate(task.stages):
            stages[name] = _open_stage(store, manifest, task, name, "model" if index == 0 else name, settings,
                                       observers, inner=index > 0)  # fmt: skip
    except BaseException:
        for stage in stages.values():
            stage.backend.close()
            if stage.alone is not None:
                stage.alone.close()
        raise
    first = stages[task.stages[0]]
    return StagedModel(manifest, task, first.view.info, stages)


def _open_stage(
    store: Store, manifest: Manifest, task: StagedTask, name: str, role: str, settings: Settings,
    observers: Observers, *, inner: bool,
) -> Stage:  # fmt: skip
    if role not in manifest.files:
        more = " ".join(f"--stage {stage}=FILE" for stage in task.stages[1:])
        raise ModelLoadError(f"{manifest.name} version {manifest.version} has no {name!r} model file.",
                             hint=f"add the {task.name} model again with all its stages: FILE {more}")  # fmt: skip
    batching = _instances(manifest.batching, settings)
    if inner:
        batching = replace(batching, max_queue_size=batching.max_queue_size * _INNER_QUEUE_FACTOR)
    options = _backend_options(manifest, settings, batching.instances)
    files = {"model": manifest.files[role]}
    backend: TensorBackend = _load_backend(store, replace(manifest, files=files), options)
    alone: TensorBackend | None = None
    try:
        batching = sized_batching(store, manifest, role, settings, backend, _effective_batching(batching, backend))
        info = _info(manifest, backend.platform, backend.execution_provider, backend.inputs, backend.outputs,
                     batching.max_batch_size)  # fmt: skip
        labels: tuple[str, ...] = ()
        if name in task.stage_labels:
            labels = _read_labels(store, manifest, task.stage_labels[name])
        view = TaskModel(info, labels, manifest.preprocess, settings.max_image_pixels)
        task.check_stage(name, view)
        if batching.instances > 1 and options.intra_op_threads < cpu_grant(settings).count:
            lone = replace(options, intra_op_threads=_all_threads(settings), allow_spinning=True)
            alone = _load_backend(store, replace(manifest, files=files), lone)
    except BaseException:
        backend.close()
        raise
    metric = f"{manifest.name}/{name}"
    batcher = Batcher(backend.run, batching, observer=lambda stats: observers.batch(metric, stats),
                      run_alone=alone.run if alone else None, name=f"lanai-{manifest.name}-{name}")  # fmt: skip
    return Stage(name, view, backend, batcher, alone)


def _read_labels(store: Store, manifest: Manifest, role: str) -> tuple[str, ...]:
    if role not in manifest.files:
        return ()
    try:
        return parse_stage_labels(store.file_path(manifest, role).read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ModelLoadError(f"{manifest.name}'s {role} file is not UTF-8 text: {exc}") from exc


class PlaneStages:
    """The ``Stages`` of one request on a loaded staged model."""

    def __init__(self, model: StagedModel, observe_prepare: Callable[[int], None]) -> None:
        self._model = model
        self._observe_prepare = observe_prepare

    def model(self, stage: str) -> TaskModel:
        return self._stage(stage).view

    def _stage(self, stage: str) -> Stage:
        found = self._model.stages.get(stage)
        if found is None:
            raise KeyError(f"model {self._model.name!r} has no stage {stage!r}")
        return found

    async def run(
        self, stage: str, prepare: Callable[[], Rows], key: Hashable, finish: Callable[[Rows], Rows] | None = None
    ) -> Rows:
        batcher = self._stage(stage).batcher
        observe = self._observe_prepare

        def timed() -> Rows:
            began = time.perf_counter_ns()
            rows = prepare()
            observe(time.perf_counter_ns() - began)
            return rows

        rows, _ = await batcher.submit_prepared(timed, key=key, finish=finish)
        return rows

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)
