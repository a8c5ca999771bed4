"""The two kinds of loaded model, and how a manifest becomes one.

A **tensor model** runs on a tensor backend behind a batcher, and serves one task of the registry. A
**language model** runs on a language backend inside a generation engine. Loading blocks (it reads and
compiles the model), so the data plane calls :func:`open_model` in a thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Union

from lanai.backends import BackendOptions, LanguageBackend, TensorBackend, backend_class, backend_kind, canary
from lanai.batching import Batcher, BatchStats
from lanai.config import Settings
from lanai.dataplane.batch_size import batch_rows, input_row_bytes
from lanai.errors import LanaiError, ModelLoadError, StoreError
from lanai.store import Manifest, Store
from lanai.store.labels import parse_labels
from lanai.tasks import Task, get_task
from lanai.tasks.base import TaskModel
from lanai.tasks.staged import StagedTask
from lanai.telemetry.cpus import CpuGrant, usable_cpus
from lanai.types import BatchingConfig, ModelInfo

if TYPE_CHECKING:
    from lanai.dataplane.staged import StagedModel
    from lanai.generation import Engine, Usage

__all__ = ["TensorModel", "LanguageModel", "Loaded", "open_model", "verify_files", "load_in_child_first", "Observers"]

log = logging.getLogger(__name__)

_MAX_AUTO_INSTANCES = 5


@dataclass(frozen=True)
class Observers:
    """Where loaded models report what they did (the data plane's metrics)."""

    batch: Callable[[str, BatchStats], None]
    generation: Callable[[str, Usage], None]


class _Loaded:
    info: ModelInfo

    @property
    def name(self) -> str:
        return self.info.name

    def batchers(self) -> list[Batcher]:
        """The batchers that queue this model's requests (none for a language model's engine)."""
        return []

    @property
    def version(self) -> str:
        return self.info.version


@dataclass
class TensorModel(_Loaded):
    """One version of a tensor model, loaded, with its batcher."""

    manifest: Manifest
    task: Task
    info: ModelInfo
    view: TaskModel
    """What its task sees of it."""
    backend: TensorBackend
    batcher: Batcher
    alone: TensorBackend | None = None
    """A second session of the model with every core, for requests that find it idle."""
    loaded_at: float = field(default_factory=time.time)

    @property
    def queue_depth(self) -> int:
        return self.batcher.queue_depth

    def batchers(self) -> list[Batcher]:
        return [self.batcher]

    async def close(self, timeout: float) -> None:
        await self.batcher.close(timeout)
        self.backend.close()
        if self.alone is not None:
            self.alone.close()


@dataclass
class LanguageModel(_Loaded):
    """One version of a language model, loaded, with its generation engine."""

    manifest: Manifest
    task: Task
    info: ModelInfo
    backend: LanguageBackend
    engine: Engine
    loaded_at: float = field(default_factory=time.time)

    @property
    def queue_depth(self) -> int:
        return self.engine.waiting

    async def close(self, timeout: float) -> None:
        await asyncio.to_thread(self.engine.close, timeout)
        self.backend.close()


Loaded = Union[TensorModel, LanguageModel, "StagedModel"]


def verify_files(store: Store, manifest: Manifest) -> None:
    """Check ``manifest``'s files against their digests before anything loads them (blocking)."""
    try:
        store.verify(manifest)
    except StoreError as exc:
        raise ModelLoadError(exc.message, hint=exc.hint) from None


async def load_in_child_first(store: Store, manifest: Manifest, settings: Settings) -> None:
    """Load each of the version's model files in a child process, unless it loaded cleanly there before
    on this runtime (``backends.canary``): a runtime that crashes on one raises ModelLoadError here."""
    options = _child_options(manifest, settings)
    task = get_task(manifest.task)
    roles = ("model", *task.stages[1:]) if isinstance(task, StagedTask) else ("model",)
    for role in (role for role in roles if role in manifest.files):  # a missing one: the real load says so
        digest = manifest.files[role].sha256
        if canary.checked(store.root, digest, manifest.backend, options):
            continue
        path = store.file_path(manifest, role)
        what = f"{manifest.name} version {manifest.version}" + ("" if role == "model" else f" ({role})")
        report = await canary.check_async(path, manifest.backend, options, timeout=settings.load_timeout_s,
                                          what=what)  # fmt: skip
        canary.remember(store.root, digest, manifest.backend, options, report)


def _child_options(manifest: Manifest, settings: Settings) -> BackendOptions:
    """The options a model's files are tried with in the canary child."""
    options = _backend_options(manifest, settings, 1)
    if backend_kind(manifest.backend) == "language":  # the file is the test, not the context's size
        options = replace(options, extra={**options.extra, "n_ctx": 256, "parallel": 1})
    return options


def sized_batching(
    store: Store, manifest: Manifest, role: str, settings: Settings, backend: TensorBackend, batching: BatchingConfig
) -> BatchingConfig:
    """``batching`` with ``max_batch_size`` 0 (lanai's to choose) sized to the memory a row of the model
    file ``role`` took in its canary run (``dataplane.batch_size``)."""
    if batching.max_batch_size:
        return batching
    digest = manifest.files[role].sha256
    measured = canary.row_bytes(store.root, digest, manifest.backend, _child_options(manifest, settings))
    rows = batch_rows(measured, input_row_bytes(backend.inputs), batching.instances)
    log.info("%s: batches of up to %d rows (%s a row, %d instances)", manifest.name, rows,
             "unmeasured" if measured is None else f"{measured / 2**20:.1f} MB", batching.instances)  # fmt: skip
    return replace(batching, max_batch_size=rows)


def open_model(store: Store, manifest: Manifest, settings: Settings, observers: Observers) -> Loaded:
    """Load ``manifest``'s model on its backend (blocking: call it in a thread), its files verified."""
    task = get_task(manifest.task)
    kind = task.kind_on(manifest.backend)
    if backend_kind(manifest.backend) != kind:
        raise ModelLoadError(
            f"{manifest.name} is a {manifest.task} model on backend {manifest.backend!r}, which cannot serve it.",
            hint=f"task {task.name} runs on: {', '.join(task.backends)}.",
        )
    if kind == "language":
        return _open_language_model(store, manifest, task, settings, observers)
    if isinstance(task, StagedTask):  # several model files in one version (e.g. ocr)
        from lanai.dataplane.staged import open_staged_model

        return open_staged_model(store, manifest, task, settings, observers)
    return _open_tensor_model(store, manifest, task, settings, observers)


def _open_tensor_model(
    store: Store, manifest: Manifest, task: Task, settings: Settings, observers: Observers
) -> TensorModel:
    batching = _instances(manifest.batching, settings)
    options = _backend_options(manifest, settings, batching.instances)
    backend: TensorBackend = _load_backend(store, manifest, options)
    batching = sized_batching(store, manifest, "model", settings, backend, _effective_batching(batching, backend))
    alone = None
    try:
        info = _info(manifest, backend.platform, backend.execution_provider, backend.inputs, backend.outputs,
                     batching.max_batch_size)  # fmt: skip
        task.check(info)
        labels: tuple[str, ...] = ()
        if "labels" in manifest.files:
            path = store.file_path(manifest, "labels")
            labels = tuple(parse_labels(path.read_bytes(), source=str(path)))
        if batching.instances > 1 and options.intra_op_threads < cpu_grant(settings).count:
            # Instances share the cores under load; a request on an idle model gets them all, with threads
            # that spin a moment after each run, so the next lone request finds them awake (measured: c1 p50
            # -0.6 ms, +15 % req/s; they sleep once the model is idle, and under load this session rests).
            lone = replace(options, intra_op_threads=_all_threads(settings), allow_spinning=True)
            alone = _load_backend(store, manifest, lone)
    except BaseException:
        backend.close()
        raise
    name = manifest.name
    batcher = Batcher(
        backend.run, batching, observer=lambda stats: observers.batch(name, stats),
        run_alone=alone.run if alone else None, name=f"lanai-{name}",
    )  # fmt: skip
    files = {role: store.file_path(manifest, role) for role in manifest.files if role not in ("model", "labels")}
    view = TaskModel(info, labels, manifest.preprocess, settings.max_image_pixels, dict(manifest.backend_options),
                     files=files)  # fmt: skip
    return TensorModel(manifest, task, info, view, backend, batcher, alone)


def _open_language_model(
    store: Store, manifest: Manifest, task: Task, settings: Settings, observers: Observers
) -> LanguageModel:
    from lanai.generation import Engine

    options = _backend_options(manifest, settings, 1)
    load_options = getattr(task, "load_options", None)
    if load_options is not None:  # e.g. embeddings: one sequence at a time, pooled outputs
        options = replace(options, extra=load_options(options.extra))
    backend: LanguageBackend = _load_backend(store, manifest, options)
    name = manifest.name
    engine = Engine(
        backend, max_queue=manifest.batching.max_queue_size, name=f"lanai-{name}",
        observer=lambda usage: observers.generation(name, usage),
        prompt_cache=_prompt_cache(store, manifest, settings, backend) if manifest.task != "embed" else None,
    )  # fmt: skip
    info = _info(manifest, backend.platform, backend.execution_provider, (), (), backend.parallel)
    return LanguageModel(manifest, task, info, backend, engine)


def _prompt_cache(store: Store, manifest: Manifest, settings: Settings, backend: Any) -> Any:
    """The model's prompt cache beyond its slots (``lanai.prompt_cache``), on disk under
    ``<store>/cache/prompts/<name>/``; None when switched off."""
    from lanai.prompt_cache import PromptCache

    if settings.prompt_cache_ram_mb <= 0:
        return None
    digest = manifest.files["model"].sha256
    folder = store.root / "cache" / "prompts" / manifest.name if settings.prompt_cache_disk_mb > 0 else None
    return PromptCache(
        ram_bytes=settings.prompt_cache_ram_mb << 20, folder=folder, disk_bytes=settings.prompt_cache_disk_mb << 20,
        min_tokens=settings.prompt_cache_min_tokens, identity=f"{digest} {backend.runtime_version}",
    )  # fmt: skip


def _info(manifest: Manifest, platform: str, provider: str, inputs: tuple, outputs: tuple, batch: int) -> ModelInfo:
    return ModelInfo(
        name=manifest.name, version=str(manifest.version), task=manifest.task, backend=manifest.backend,
        platform=platform, inputs=inputs, outputs=outputs, execution_provider=provider, max_batch_size=batch,
    )  # fmt: skip


def _load_backend(store: Store, manifest: Manifest, options: BackendOptions) -> Any:
    try:
        return backend_class(manifest.backend).load(store.file_path(manifest, "model"), options)
    except LanaiError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"{manifest.name} version {manifest.version} did not load: {exc}") from exc


def cpu_grant(settings: Settings) -> CpuGrant:
    """The CPUs the process may use (affinity and cgroup quota, read under ``sensors_root``), found once."""
    return usable_cpus(settings.sensors_root)


def _all_threads(settings: Settings) -> int:
    """Threads for a session that has the CPUs to itself: the setting; else, where the box grants fewer
    CPUs than it has online, that many; else 0 (the runtime's own choice)."""
    grant = cpu_grant(settings)
    return settings.intra_op_threads or (grant.count if grant.count < grant.online else 0)


def _instances(config: BatchingConfig, settings: Settings) -> BatchingConfig:
    """Resolve ``instances = 0`` (auto): one more than the usable CPUs on a multi-core grant (at most 5),
    else one. The extra instance keeps the cores busy while another waits for Python's GIL between its
    decoding and inference calls (measured on 2 cores: 1.82 instead of 1.71 busy cores, +5–7 % images/s)."""
    if config.instances:
        return config
    cores = cpu_grant(settings).count
    return replace(config, instances=min(cores + 1, _MAX_AUTO_INSTANCES) if cores >= 2 else 1)


def _backend_options(manifest: Manifest, settings: Settings, instances: int) -> BackendOptions:
    """The manifest's backend options over the server's settings. With several instances, the default
    thread count is the usable CPUs shared out among them (with one, see :func:`_all_threads`)."""
    given = manifest.backend_options
    threads = _all_threads(settings)
    if not settings.intra_op_threads and instances > 1:
        threads = max(1, cpu_grant(settings).count // instances)
    return BackendOptions(
        providers=tuple(given.get("providers", settings.providers)),
        intra_op_threads=int(given.get("intra_op_threads", threads)),
        inter_op_threads=int(given.get("inter_op_threads", settings.inter_op_threads)),
        graph_optimization=str(given.get("graph_optimization", settings.graph_optimization)),
        allow_spinning=bool(given.get("allow_spinning", settings.allow_spinning)),
        extra={"delegates": settings.litert_delegates, **given} if settings.litert_delegates else dict(given),
    )


def _effective_batching(config: BatchingConfig, backend: TensorBackend) -> BatchingConfig:
    """Batching is off for models whose batch axis is fixed."""
    fixed = backend.max_batch_size == 1 or any(spec.shape[:1] != (-1,) for spec in backend.inputs)
    if fixed and config.max_batch_size != 1:
        return replace(config, max_batch_size=1, max_queue_delay_us=0)
    return config
