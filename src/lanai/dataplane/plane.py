"""The data plane: loaded models and every call a door makes, in protocol-neutral values.

It knows nothing about HTTP or gRPC. It loads each model's active version from the store, owns the
models' batchers and generation engines, validates requests against model metadata, runs tasks and
pipelines, and swaps versions by loading the new one before draining and unloading the old. Every
method takes and returns the values of ``lanai.types``, ``lanai.protocol`` and the task registry, and
raises the errors of ``lanai.errors``; each door turns those into its own wire format and status codes.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Mapping, Sequence
from functools import cache, partial
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np

import lanai
from lanai.config import Settings
from lanai.dataplane.embed_cache import CacheKey, EmbeddingCache, content_digest
from lanai.dataplane.models import (
    LanguageModel,
    Loaded,
    Observers,
    TensorModel,
    cpu_grant,
    load_in_child_first,
    open_model,
    verify_files,
)
from lanai.dataplane.outcomes import Outcomes, OutcomeSummary, is_failure
from lanai.dataplane.pipelines import run_pipeline
from lanai.dataplane.residency import Residency
from lanai.dataplane.staged import PlaneStages, StagedModel
from lanai.dataplane.validate import validate
from lanai.errors import (
    BadInput,
    LanaiError,
    ModelLoadError,
    ModelNotFound,
    NotReady,
    Overloaded,
    VersionNotFound,
    WrongTask,
)
from lanai.pipelines import Pipeline, PipelineList, PipelineResult, load_pipelines
from lanai.protocol.doctor import DoctorSummary
from lanai.protocol.health import FailedModel, HealthReport, ModelStatus, Readiness
from lanai.protocol.status import StatusReport
from lanai.protocol.v2 import EXTENSIONS, ModelMetadata, ModelParameters, RepositoryEntry, ServerMetadata
from lanai.protocol.wire import Wire
from lanai.store import Store
from lanai.tasks import get_task
from lanai.tasks.base import Job, RunTiming, parse_params
from lanai.telemetry.device import read_device
from lanai.telemetry.lifecycle import Lifecycle
from lanai.telemetry.memory import release_free_memory
from lanai.telemetry.metrics import Metrics
from lanai.telemetry.monitor import Condition, DeviceMonitor, ThermalLimits
from lanai.telemetry.status import RecentErrors, StatusRecorder
from lanai.types import InferRequest, InferResponse

if TYPE_CHECKING:
    from lanai.generation import Chunk, GenerateRequest, Generation

__all__ = ["DataPlane"]

log = logging.getLogger(__name__)

_RUNTIMES = ("onnxruntime", "numpy", "pillow", "starlette", "uvicorn", "grpcio", "llama-cpp-python", "ai-edge-litert")


class DataPlane:
    """Loads models from ``store`` and runs requests on them."""

    def __init__(self, store: Store, settings: Settings, metrics: Metrics | None = None) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.models: dict[str, Loaded] = {}
        self.failed: dict[str, str] = {}
        """Models whose active version did not load, with the reason."""
        self._pipelines: dict[str, Pipeline] = {}
        self._failed_pipelines: dict[str, str] = {}
        self._pipelines_seen: tuple[float, int] | None = None
        """The pipelines folder's state when last read (see ``pipelines``)."""
        self._observers = Observers(self.metrics.observe_batch, self.metrics.observe_generation)
        self.started_at = time.time()
        self._ready = False
        self._swap_lock = asyncio.Lock()
        self.cache: EmbeddingCache | None = None
        """Answers of cacheable tasks (embeddings), by model version and content; None when turned off."""
        if settings.embedding_cache_bytes > 0:
            folder = store.root / "cache" / "embeddings" if settings.embedding_cache_disk else None
            self.cache = EmbeddingCache(
                settings.embedding_cache_bytes, folder,
                on_hit=lambda model: self.metrics.embedding_cache_hits.labels(model).inc(),
                on_miss=lambda model: self.metrics.embedding_cache_misses.labels(model).inc(),
            )  # fmt: skip
        self._pending_writes: set[asyncio.Future] = set()
        self._loading = True
        self.draining = False
        """Taken out of rotation (``lanai drain``, or shutting down): still serving, but not ready."""
        self.pipelines_running = 0
        """Pipelines in flight: a followed model's update waits for them (one run, one version per step)."""
        self.maintenance: set[str] = set()
        """Models whose new version is being activated (the agent check says ``maint`` meanwhile)."""
        limits = ThermalLimits(settings.thermal_soft_c, settings.thermal_hard_c)
        self.monitor = DeviceMonitor(
            limits, root=settings.sensors_root, store=store.root, interval=settings.monitor_interval_s,
            on_sample=self.metrics.observe_device, on_change=self._on_device_change,
            on_alert=lambda kind: self.metrics.alerts.labels(kind).inc(),
        )  # fmt: skip
        self.metrics.set_state("loading")
        self.lifecycle = Lifecycle(store.root)
        """Whether earlier runs ended cleanly (``lanai serve`` calls ``begin`` and ``end``)."""
        self.outcomes: dict[str, Outcomes] = {}
        """What each model's current version's requests came to (server-side failures, latencies)."""
        self.previous_outcomes: dict[str, OutcomeSummary] = {}
        """The same for the version each model had before its last swap."""
        self.residency = Residency(self)
        """Which models load on demand, leave when idle, and make room for each other."""
        self.doctor: DoctorSummary | None = None
        """``lanai doctor --quick`` as run at start (setting ``doctor_at_start``), for ``/health``."""
        self.recorder = StatusRecorder(
            settings.status_interval_s, lambda: self.monitor.condition, lambda: self.outcomes
        )
        """The box's and the models' last 15 minutes, for ``/v1/status`` (sampled while the plane runs)."""
        self.recent_errors = RecentErrors()
        """The last warnings and errors logged, for ``/v1/status`` (``lanai serve`` attaches it to the loggers)."""

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load every model that has an active version. A model that fails is logged, not fatal."""
        await asyncio.to_thread(self.monitor.start)
        log.info("sizing for %s", cpu_grant(self.settings).reason)
        self.recorder.start()
        if self.settings.doctor_at_start:
            self.doctor = await asyncio.to_thread(_run_doctor, self.settings)
        self.residency.start()
        for summary in self.store.list():
            if summary.active is None or not self.residency.loads_at_start(summary.name):
                continue
            try:
                await self.load(summary.name)
            except LanaiError as exc:
                log.error("model %s did not load: %s", summary.name, exc)
        release_free_memory()
        self.recorder.sample()  # the models just loaded have a first entry at once
        self._ready = True
        self._loading = False
        self._publish_state()

    async def shutdown(self, timeout: float | None = None) -> None:
        """Stop taking requests, let queued ones finish (up to ``timeout`` s), unload everything."""
        self._ready = False
        self.draining = True
        self._publish_state()
        await asyncio.to_thread(self.monitor.stop)
        await self.recorder.stop()
        await self.residency.stop()
        timeout = self.settings.shutdown_timeout if timeout is None else timeout
        await asyncio.gather(*(m.close(timeout) for m in list(self.models.values())))
        self.models.clear()

    async def load(self, name: str) -> ModelMetadata:
        """Load (or reload) the active version of ``name``; the old version serves until the new is ready."""
        async with self._swap_lock:
            manifest = self.store.manifest(name)
            try:
                model = await self.open_version(name, manifest.version)
            except LanaiError as exc:
                self.failed[name] = str(exc)
                raise
            old = await self._swap(name, model, manifest)
        if old is not None:
            await old.close(self.settings.shutdown_timeout)
            release_free_memory()
        return _metadata(model)

    async def open_version(self, name: str, version: int) -> Loaded:
        """Load ``version`` of ``name`` beside whatever serves (nothing is sent to it until it is swapped
        in): e.g. to run its golden inputs before it is activated. The caller closes it if unused."""
        manifest = self.store.manifest(name, version)

        async def loading() -> Loaded:
            await _in_daemon_thread(verify_files, self.store, manifest)
            if self.settings.canary_load:
                await load_in_child_first(self.store, manifest, self.settings)
            return await _in_daemon_thread(open_model, self.store, manifest, self.settings, self._observers)

        try:
            return await asyncio.wait_for(loading(), self.settings.load_timeout_s)
        except asyncio.TimeoutError:
            # its thread cannot be stopped: it finishes or stays blocked on its own, holding nothing of ours
            raise ModelLoadError(
                f"{name} version {version} did not load within {self.settings.load_timeout_s:g} s.",
                hint="its runtime hung (a file on a stuck mount, a runtime bug), or the model needs longer: "
                "raise load_timeout_s.",
            ) from None

    async def activate_loaded(self, name: str, model: Loaded) -> None:
        """Make the already loaded ``model`` (from :meth:`open_version`) the active version of ``name`` in
        the store and in service at once: requests go to it from now on, the old version finishes what it
        has and is closed. No request fails in the swap."""
        version = int(model.version)
        async with self._swap_lock:
            await asyncio.to_thread(self.store.activate, name, version)
            old = await self._swap(name, model, self.store.manifest(name, version))
        if old is not None:
            await old.close(self.settings.shutdown_timeout)
            release_free_memory()

    async def _swap(self, name: str, model: Loaded, manifest: Any) -> Loaded | None:
        """Put ``model`` in service for ``name`` (under the swap lock); returns the version it replaced."""
        old = self.models.get(name)
        for batcher in model.batchers():
            batcher.throttle(self.monitor.condition.admission)
        self.models[name] = model
        self.failed.pop(name, None)
        info = model.info
        self.metrics.model_loaded(name, info.version, info.backend, info.execution_provider, _digest(manifest))
        if self.cache is not None:  # answers of other versions must never be given for this one
            await asyncio.to_thread(self.cache.drop_other_versions, name, info.version)
        previous = self.outcomes.get(name)
        if previous is not None and previous.version != info.version:
            self.previous_outcomes[name] = previous.summary()
        self.outcomes[name] = Outcomes(info.version)
        log.info("serving %s version %s on %s%s", name, info.version, info.execution_provider, _sizing(model))
        return old

    async def unload(self, name: str) -> None:
        """Let the model's queued requests finish, then free it."""
        async with self._swap_lock:
            model = self.models.pop(name, None)
            self.failed.pop(name, None)
        if model is None:
            raise ModelNotFound(f"model {name!r} is not loaded.", hint=f"loaded models: {self._loaded_list()}.")
        self.metrics.model_unloaded(name)
        await model.close(self.settings.shutdown_timeout)

    # -- server ------------------------------------------------------------------------------------

    def live(self) -> bool:
        """The process answers (always true when anyone can ask)."""
        return True

    def ready(self) -> bool:
        """Started and not draining."""
        return self._ready

    def readiness(self) -> Readiness:
        """Whether a load balancer should send work here now, why not, and how much (see ``Readiness``)."""
        condition = self.monitor.condition
        models = list(self.models.values())  # the monitor's thread asks too
        reasons = []
        if self._loading:
            state = "loading"
            reasons.append("loading the models")
        elif self.draining or not self._ready:
            state = "draining"
            reasons.append("draining: taken out of rotation" if self._ready else "shutting down")
        else:
            if condition.level == "hard":
                reasons.append(condition.reason() or "too hot")
            if not models and not self._loads_on_demand():
                reasons.append("no model is loaded" + (f" ({len(self.failed)} failed)" if self.failed else ""))
            full = [m.name for m in models if any(b.queue_depth >= b.queue_cap for b in m.batchers())]
            if full:  # no names: readiness is public, and the model list is for admins (GET /health)
                reasons.append(f"the queue of {len(full)} of {len(models)} model(s) is full")
            state = "degraded" if reasons else "ready"
        if state == "ready" and condition.level == "soft":
            reasons.append(condition.reason() or "warm")
        weight, maxconn = self._weight(models, condition.admission) if state == "ready" else (0, 0)
        return Readiness(state, tuple(reasons), condition.admission, weight, maxconn)  # type: ignore[arg-type]

    @staticmethod
    def _weight(models: list[Loaded], admission: float) -> tuple[int, int]:
        """The agent check's weight (1–100 %: admission, less the share of queue in use) and maxconn (the
        connections the models can work on at once, with a queue as deep again, scaled by admission)."""
        capacity, used, slots = 0, 0, 0
        for model in models:
            for batcher in model.batchers():
                capacity += batcher.queue_cap
                used += batcher.queue_depth
                slots += batcher.capacity
            if isinstance(model, LanguageModel):
                slots += model.engine.slots
        fill = used / capacity if capacity else 0.0
        weight = max(1, round(100 * admission * (1.0 - fill)))
        return weight, max(1, round(2 * slots * max(admission, 0.25)))

    def drain(self) -> None:
        """Take the box out of rotation: readiness and the agent check say draining; requests still run."""
        if not self.draining:
            log.info("draining: the box leaves the load balancer's rotation")
        self.draining = True
        self._publish_state()

    def undrain(self) -> None:
        if self.draining and self._ready:
            log.info("drain ended: the box is back in rotation")
            self.draining = False
        self._publish_state()

    def _publish_state(self) -> None:
        self.metrics.set_state(self.readiness().state)

    def _on_device_change(self, condition: Condition) -> None:
        """From the monitor's thread: throttle every batcher to the new admission, and say so."""
        for model in list(self.models.values()):
            for batcher in model.batchers():
                batcher.throttle(condition.admission)
        self._publish_state()

    def _admit(self) -> None:
        """Refuse work while the box is past its hard thermal limit (503 with Retry-After)."""
        condition = self.monitor.condition
        if condition.level == "hard":
            raise Overloaded(
                f"the box is too hot to take work: {condition.reason()}.",
                hint="retry in a minute, or send the work to another box; cool the box (a fan, airflow).",
                retry_after=30,
            )

    def server_metadata(self) -> ServerMetadata:
        return ServerMetadata("lanai", lanai.__version__, EXTENSIONS)

    def health(self) -> HealthReport:
        status: Literal["healthy", "degraded", "unavailable"]
        if not self._ready:
            status = "unavailable"
        elif self.failed or not (self.models or self._loads_on_demand()) or self.lifecycle.crash_loop:
            status = "degraded"
        else:
            status = "healthy"
        models = tuple(
            ModelStatus(
                m.name,
                m.version,
                m.info.task,
                m.info.backend,
                m.info.execution_provider,
                m.info.max_batch_size,
                m.queue_depth,
            )  # fmt: skip
            for m in self.models.values()
        )
        failed = tuple(FailedModel(name, error) for name, error in self.failed.items())
        uptime = round(time.time() - self.started_at, 1)
        device = read_device(self.monitor.condition, cpus=cpu_grant(self.settings))
        unclean = self.lifecycle.recent(86400.0)
        return HealthReport(status, lanai.__version__, uptime, models, failed, _runtime_versions(), device, unclean,
                            self.doctor)  # fmt: skip

    def status(self) -> StatusReport:
        """``health()`` with the last 15 minutes and the recent warnings and errors (``GET /v1/status``)."""
        return self.recorder.report(self.health(), self.recent_errors.records())

    def render_metrics(self) -> bytes:
        """The Prometheus text exposition, with queue depths read now."""
        self.metrics.unclean_exits.set(self.lifecycle.recent(86400.0))
        for model in self.models.values():
            self.metrics.queue_depth.labels(model.name).set(model.queue_depth)
        if self.cache is not None:
            self.metrics.embedding_cache_bytes.set(self.cache.bytes)
        return self.metrics.render()

    # -- models ------------------------------------------------------------------------------------

    def loaded_models(self) -> list[str]:
        return list(self.models)

    def _loads_on_demand(self) -> bool:
        """Whether some model in the store loads on its first request (so none loaded is no fault)."""
        return any(s.active is not None and self.residency.on_demand(s.name) for s in self.store.list())

    async def ensure(self, name: str) -> None:
        """Load ``name`` now if it loads on demand and is not loaded (requests wait for it; see
        ``dataplane.residency``); otherwise nothing."""
        if name not in self.models:
            await self.residency.ensure(name)

    def get(self, name: str, version: str | None = None) -> Loaded:
        """The loaded model ``name``; with ``version``, only if that is the version loaded."""
        self._check_ready()
        model = self.models.get(name)
        if model is None:
            raise self._not_found(name)
        self.residency.touch(name)
        if version not in (None, "", model.version):
            raise VersionNotFound(
                f"model {name!r} has version {model.version} loaded, not {version!r}.",
                hint=f"activate it first: lanai models activate {name} {version}",
            )
        return model

    def check_room(self, name: str, version: str | None = None) -> None:
        """``get``'s errors, then Overloaded (counted as the model's failure, as a refusal from the queue
        is) if its queue is full now: a door asks before it reads a request's body, so that a box turning
        most requests away does not read and parse each of them first. The queue itself still decides.
        A task answered from the embedding cache may not need the queue, so it is not refused here; nor is a
        model that loads on demand and is not loaded yet (the request loads it, :meth:`run_task`)."""
        if name not in self.models and self.residency.on_demand(name) and not self.draining:
            return
        model = self.get(name, version)
        if not isinstance(model, TensorModel) or self._cache_for(model) is not None:
            return
        try:
            model.batcher.check_room()
        except Overloaded as exc:
            self._record_error(model, time.perf_counter(), exc)
            raise

    def model_metadata(self, name: str, version: str | None = None) -> ModelMetadata:
        return _metadata(self.get(name, version))

    def model_ready(self, name: str, version: str | None = None) -> bool:
        model = self.models.get(name)
        return self._ready and model is not None and version in (None, "", model.version)

    def repository_index(self, ready_only: bool = False) -> list[RepositoryEntry]:
        """Every model in the store, loaded or not (``ready_only``: the loaded ones)."""
        entries = []
        for summary in self.store.list():
            loaded = self.models.get(summary.name)
            if loaded is not None:
                entries.append(RepositoryEntry(summary.name, loaded.version, "READY", ""))
            elif not ready_only:
                reason = self.failed.get(summary.name, "not loaded")
                if summary.name not in self.failed and self.residency.on_demand(summary.name):
                    reason = "loads on its first request"
                version = "" if summary.active is None else str(summary.active)
                entries.append(RepositoryEntry(summary.name, version, "UNAVAILABLE", reason))
        return entries

    def default_model(self) -> Loaded:
        """The model that tutorials' endpoints (/predict) use: the setting default_model, else the only
        model, else the first classifier."""
        name = self.settings.default_model
        if name:
            return self.get(name)
        self._check_ready()
        if len(self.models) == 1:
            return next(iter(self.models.values()))
        for model in self.models.values():
            if model.info.task == "classify":
                return model
        raise ModelNotFound("no default model is set and none is loaded.", hint="set default_model.")

    def _check_ready(self) -> None:
        if not self._ready and not self.models:
            raise NotReady("the server is starting or shutting down.", hint="retry in a moment.")

    def _not_found(self, name: str) -> ModelNotFound:
        if name in self.failed:
            return ModelNotFound(f"model {name!r} failed to load: {self.failed[name]}")
        if self.residency.on_demand(name) and any(s.name == name and s.active is not None for s in self.store.list()):
            return ModelNotFound(
                f"model {name!r} loads on demand and is not loaded.",
                hint=f"send it a request (or POST /v2/repository/models/{name}/load) to load it.",
            )
        return ModelNotFound(f"no model named {name!r} is loaded.", hint=f"loaded models: {self._loaded_list()}.")

    def _loaded_list(self) -> str:
        return ", ".join(sorted(self.models)) or "none"

    # -- tensors and tasks -------------------------------------------------------------------------

    def tensor_model(self, name: str, version: str | None = None) -> TensorModel:
        model = self.get(name, version)
        if not isinstance(model, TensorModel):
            raise WrongTask(f"model {name!r} is a {model.info.task} model; it takes text, not tensors or images.",
                            model=name, task=model.info.task)  # fmt: skip
        return model

    async def infer(self, name: str, request: InferRequest, version: str | None = None) -> InferResponse:
        """Run a request of named tensors through the model's batcher."""
        self._admit()
        self.residency.hold(name)
        try:
            await self.ensure(name)
            model = self.tensor_model(name, version)
            validate(model.info, request)
            started = time.perf_counter()
            try:
                outputs, _ = await model.batcher.submit(request.inputs)
            except Exception as exc:
                self._record_error(model, started, exc)
                raise
        finally:
            self.residency.release(name)
        self._record(model, started)
        if request.outputs:
            outputs = {k: outputs[k] for k in request.outputs}
        return InferResponse(model.name, model.version, outputs, request.id)

    async def run_task(
        self,
        name: str,
        task: str,
        data: Any,
        params: Mapping[str, Any] | Wire | None = None,
        version: str | None = None,
    ) -> Wire:
        """Run ``task`` on the model ``name`` with ``data`` (what the task accepts) and ``params`` (the
        task's parameters, or a mapping of them, strings allowed); returns the task's result."""
        started = time.perf_counter_ns()
        self._admit()
        self.residency.hold(name)
        try:
            await self.ensure(name)
            model = self.get(name, version)
            try:
                answer = await self.run_task_on(model, task, data, params, started)
            except Exception as exc:
                self._record_error(model, started / 1e9, exc)
                raise
        finally:
            self.residency.release(name)
        self._record(model, started / 1e9)
        return answer

    async def run_task_on(
        self,
        model: Loaded,
        task: str,
        data: Any,
        params: Mapping[str, Any] | Wire | None = None,
        started: int | None = None,
    ) -> Wire:
        """:meth:`run_task` on a loaded model, whether in service or not (e.g. a version about to be
        activated, from :meth:`open_version`)."""
        started = time.perf_counter_ns() if started is None else started
        wanted = get_task(task)
        if isinstance(model, StagedModel) and model.task is wanted:  # several models per request (e.g. ocr)
            return await self._run_staged(model, data, params)
        if model.task is not wanted or not isinstance(model, TensorModel):
            raise WrongTask(f"model {model.name!r} is a {model.info.task} model, not a {task} model.",
                            model=model.name, task=model.info.task)  # fmt: skip
        if not isinstance(params, wanted.params):
            params = parse_params(wanted.params, cast(Mapping[str, Any], params or {}), task=task)
        job = wanted.job(model.view, data, params)
        rows, timing = await self._rows(model, task, job, data, cast(Wire, params), started)
        answer = job.result(rows, timing)
        if inspect.isawaitable(answer):  # a task with work to finish off the event loop (e.g. redact's rules)
            answer = await answer
        return answer

    def _record(self, model: Loaded, started_s: float, *, ok: bool = True) -> None:
        """Count a request towards its version's outcomes."""
        outcomes = self.outcomes.get(model.name)
        if outcomes is not None and outcomes.version == model.version:
            outcomes.record(ok, time.perf_counter() - started_s)

    def _record_error(self, model: Loaded, started_s: float, error: BaseException) -> None:
        """Count a request that raised as failed, unless what the client sent was at fault."""
        if is_failure(error):
            self._record(model, started_s, ok=False)

    def _cache_for(self, model: TensorModel) -> EmbeddingCache | None:
        """The embedding cache, if answers of ``model``'s task may come from it."""
        return self.cache if getattr(model.task, "cacheable", False) else None

    async def _rows(
        self, model: TensorModel, task: str, job: Job, data: Any, params: Wire, started: int
    ) -> tuple[dict[str, np.ndarray], RunTiming]:
        """The request's rows: from the embedding cache when its task is cacheable and the cache holds
        them (then its batcher never sees it: all timings are 0), else from a batch."""
        key = None
        cache = self._cache_for(model)
        if cache is not None and isinstance(data, (str, bytes)):
            key = CacheKey(model.name, model.version, task, params, content_digest(data))
            cached = cache.get(key)
            if cached is None and cache.folder is not None:
                cached = await asyncio.to_thread(cache.read, key)
            cache.count(key, cached is not None)
            if cached is not None:
                return cached, RunTiming(started, 0, 0, 0, 0)
        rows, timing = await self._submit(model, job, started)
        if key is not None and cache is not None:
            cache.put(key, rows)
            if cache.folder is not None:  # written behind the answer
                write = asyncio.get_running_loop().run_in_executor(None, cache.write, key, rows)
                self._pending_writes.add(write)
                write.add_done_callback(self._pending_writes.discard)
        return rows, timing

    async def _submit(self, model: TensorModel, job: Job, started: int) -> tuple[dict[str, np.ndarray], RunTiming]:
        prepare_ns = 0
        prepare = job.prepare

        def timed_prepare() -> dict[str, np.ndarray]:
            nonlocal prepare_ns
            began = time.perf_counter_ns()
            rows = prepare()
            prepare_ns = time.perf_counter_ns() - began
            return rows

        rows, timing = await model.batcher.submit_prepared(
            timed_prepare, key=job.key, finish=job.finish, collate=job.collate
        )
        self.metrics.preprocess_seconds.labels(model.name).observe(prepare_ns / 1e9)
        # waiting for the batch to start, and for the other inputs of the batch to be prepared
        queue_ns = timing.queue_ns + timing.prepare_ns - prepare_ns
        return rows, RunTiming(started, prepare_ns, queue_ns, timing.compute_ns, timing.batch_size)

    async def _run_staged(self, model: StagedModel, data: Any, params: Mapping[str, Any] | Wire | None) -> Wire:
        task = model.task
        if not isinstance(params, task.params):
            params = parse_params(task.params, cast(Mapping[str, Any], params or {}), task=task.name)
        observe = self.metrics.preprocess_seconds.labels(model.name).observe
        return cast(Wire, await task.run(PlaneStages(model, lambda ns: observe(ns / 1e9)), data, params))

    # -- language models ---------------------------------------------------------------------------

    def language_model(self, name: str) -> LanguageModel:
        self._admit()
        model = self.get(name)
        if not isinstance(model, LanguageModel):
            raise WrongTask(f"model {name!r} is a {model.info.task} model, not a language model.",
                            model=name, task=model.info.task)  # fmt: skip
        return model

    def chat_prompt(
        self, name: str, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None
    ) -> list[int]:
        """The prompt tokens of ``messages`` under the model's chat template (``tools`` for templates that
        describe functions themselves: see ``tasks.tool_calls``)."""
        from lanai.tasks.chat_template import render_chat

        backend = self.language_model(name).backend
        prompt = render_chat(backend.chat_template, messages, bos=backend.bos_text, eos=backend.eos_text, tools=tools)
        starts_with_bos = bool(backend.bos_text) and prompt.startswith(backend.bos_text)
        return backend.tokenize(prompt, add_special=not starts_with_bos, parse_special=True)

    def tool_family(self, name: str) -> Any:
        """How language model ``name`` writes tool calls (``tasks.tool_calls.Family``), from its template."""
        from lanai.tasks.tool_calls import family_of

        return family_of(self.language_model(name).backend.chat_template)

    def text_prompt(self, name: str, text: str, *, add_special: bool = True) -> list[int]:
        return self.language_model(name).backend.tokenize(text, add_special=add_special)

    def generate(self, name: str, request: GenerateRequest) -> Generation:
        """Start generating for ``request``; iterate the result on this event loop."""
        return self.generate_many(name, [request])[0]

    def generate_many(self, name: str, requests: Sequence[GenerateRequest]) -> list[Generation]:
        """Start several answers to one prompt (their sampling may differ): the prompt is read once."""
        model = self.language_model(name)
        if model.info.task == "embed":
            raise WrongTask(
                f"model {name!r} is an embedding model; it does not generate text.", model=name, task="embed"
            )
        started = time.perf_counter()
        generations = model.engine.submit_many(requests)
        for generation in generations:  # counted when the reader gets the last chunk (a long answer is slow)
            generation.on_finish = partial(self._generation_done, model, started)
        return generations

    def _generation_done(self, model: Loaded, started_s: float, last: Chunk) -> None:
        self._record(model, started_s, ok=last.error is None and last.finish_reason != "error")

    def vocabulary_size(self, name: str) -> int:
        """How many tokens language model ``name`` knows (token ids run from 0 to this, exclusive)."""
        return int(self.language_model(name).backend.n_vocab)

    async def embed(
        self, name: str, texts: Sequence[str | bytes], dimensions: int | None = None
    ) -> tuple[list[np.ndarray], int]:
        """One embedding per input, and the number of tokens read. A GGUF encoder embeds texts in its
        generation engine; an ONNX encoder embeds texts (task embed) or images (task embed-image) in
        batches, all of a call's inputs at once, each answered from the embedding cache if it can be.
        ``dimensions`` keeps each vector's first so many values, scaled back to length 1 (as OpenAI's
        ``dimensions`` does: meaningful for models trained so, e.g. Matryoshka embeddings)."""
        self.residency.hold(name)
        try:
            await self.ensure(name)
            model, started = self.models.get(name), time.perf_counter()
            try:
                vectors, tokens = await self._embed(name, texts)
            except Exception as exc:
                if model is not None:
                    self._record_error(model, started, exc)
                raise
        finally:
            self.residency.release(name)
        if model is not None:
            self._record(model, started)
        if dimensions is None:
            return vectors, tokens
        width = len(vectors[0]) if vectors else dimensions
        if not 1 <= dimensions <= width:
            raise BadInput(f"'dimensions' is {dimensions}; this model's embeddings have {width}.",
                           hint=f"ask for 1 to {width}, or leave it out.")  # fmt: skip
        return [_shortened(vector, dimensions) for vector in vectors], tokens

    async def _embed(self, name: str, texts: Sequence[str | bytes]) -> tuple[list[np.ndarray], int]:
        loaded = self.get(name)
        if isinstance(loaded, TensorModel):
            return await self._embed_tensors(loaded, texts)
        model = self.language_model(name)
        if model.info.task != "embed":
            raise WrongTask(f"model {name!r} is a {model.info.task} model; it was not loaded for embeddings.",
                            model=name, task=model.info.task, hint="add the GGUF again with --task embed.")  # fmt: skip
        tokens = [model.backend.tokenize(text if isinstance(text, str) else text.decode()) for text in texts]
        vectors = [await model.engine.embed(t) for t in tokens]
        return vectors, sum(len(t) for t in tokens)

    async def _embed_tensors(self, model: TensorModel, items: Sequence[str | bytes]) -> tuple[list[np.ndarray], int]:
        from lanai.tasks.embed import embedding_of

        task = model.task
        embeds = getattr(task, "cacheable", False) and task.name in ("embed", "embed-image")
        if not embeds:
            raise WrongTask(f"model {model.name!r} is a {model.info.task} model; it does not make embeddings.",
                            model=model.name, task=model.info.task)  # fmt: skip
        started = time.perf_counter_ns()
        params = task.params()
        jobs = [task.job(model.view, item, params) for item in items]  # bad input fails before any runs
        answers = await asyncio.gather(
            *(self._rows(model, task.name, job, item, params, started) for job, item in zip(jobs, items))
        )
        vectors = [embedding_of(rows) for rows, _ in answers]
        return vectors, sum(int(rows["tokens"].sum()) for rows, _ in answers)

    # -- pipelines ---------------------------------------------------------------------------------

    def pipelines(self) -> PipelineList:
        """The pipelines in ``<store>/pipelines``, and the files there that could not be read."""
        pipelines, failed = self._read_pipelines()
        return PipelineList.of(pipelines, failed)

    def _read_pipelines(self) -> tuple[dict[str, Pipeline], dict[str, str]]:
        """The folder is read again whenever a file in it has changed."""
        folder = self.store.root / "pipelines"
        try:
            stamps = [p.stat().st_mtime_ns for p in folder.glob("*.toml")]
            seen = (folder.stat().st_mtime, sum(stamps) + len(stamps))
        except FileNotFoundError:
            seen = (0.0, 0)
        if seen != self._pipelines_seen:
            self._pipelines, self._failed_pipelines = load_pipelines(folder)
            self._pipelines_seen = seen
        return self._pipelines, self._failed_pipelines

    def pipeline_models(self, name: str) -> list[str]:
        """The models the pipeline ``name`` uses (none if there is no such pipeline)."""
        pipeline = self._read_pipelines()[0].get(name)
        return [step.model for step in pipeline.steps] if pipeline is not None else []

    async def run_pipeline(self, name: str, data: bytes) -> PipelineResult:
        """Run the pipeline ``name`` on ``data`` (what its first step's task accepts)."""
        self._check_ready()
        pipelines, failed = self._read_pipelines()
        pipeline = pipelines.get(name)
        if pipeline is None:
            if name in failed:
                raise ModelNotFound(f"pipeline {name!r} could not be read: {failed[name]}")
            known = ", ".join(sorted(pipelines)) or "none"
            raise ModelNotFound(f"no pipeline named {name!r}.", hint=f"pipelines: {known}.")
        self.pipelines_running += 1
        try:
            return await run_pipeline(self, pipeline, data)
        finally:
            self.pipelines_running -= 1


def _metadata(model: Loaded) -> ModelMetadata:
    info = model.info
    parameters = ModelParameters(info.task, info.backend, info.execution_provider, info.max_batch_size)
    return ModelMetadata(info.name, (info.version,), info.platform, info.inputs, info.outputs, parameters)


def _run_doctor(settings: Settings) -> DoctorSummary:
    """``lanai doctor --quick`` without the port (the doors bind it next); its problems are logged."""
    from lanai.doctor import DoctorOptions, run_doctor  # imported late: the doctor reads this module

    report = run_doctor(settings, DoctorOptions(benchmark=False, port=False))
    summary = report.summary(time.time())
    for line in summary.problems:
        log.warning("doctor: %s", line)
    return summary


@cache
def _runtime_versions() -> dict[str, str]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in _RUNTIMES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def _shortened(vector: np.ndarray, dimensions: int) -> np.ndarray:
    kept = np.asarray(vector[:dimensions], dtype=np.float32)
    norm = float(np.linalg.norm(kept))
    return kept / norm if norm > 0 else kept


def _digest(manifest: Any) -> str:
    """What a model version is, across boxes: the registry artifact it was pulled as, else its file."""
    pulled = manifest.provenance.get("artifact_digest")
    return str(pulled) if pulled else "sha256:" + manifest.files["model"].sha256


def _in_daemon_thread(function: Any, *args: Any) -> asyncio.Future[Any]:
    """``function(*args)`` on a thread of its own that the process does not wait for at exit (unlike
    ``asyncio.to_thread``'s pool): a load that hangs must not hang the shutdown too."""
    import threading

    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():  # given up on (timed out) meanwhile: what it made late is freed
            if result is not None and hasattr(result, "close"):
                loop.create_task(result.close(0))
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def run() -> None:
        try:
            result, error = function(*args), None
        except BaseException as exc:  # handed to the awaiting task, whatever it is
            result, error = None, exc
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:
            pass  # the loop closed while this ran

    threading.Thread(target=run, name="lanai-load", daemon=True).start()
    return future


def _sizing(model: Loaded) -> str:
    """``: 3 batch instances and a lone-request session``, or nothing for a model without batchers."""
    batchers = model.batchers()
    if not batchers:
        return ""
    count = "+".join(str(b.instances) for b in batchers)
    plural = "s" if len(batchers) > 1 or batchers[0].instances != 1 else ""
    alone = " and a lone-request session" if any(b.runs_alone_apart for b in batchers) else ""
    return f": {count} batch instance{plural}{alone}"
