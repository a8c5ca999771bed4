"""The composition root of serving: loaded models, their batchers, and the calls transports make.

The host knows nothing about HTTP. It loads each model's active version from the store, owns one
batcher and one worker thread per model, validates requests against model metadata, and swaps
versions by loading the new one before draining and unloading the old.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from lanai.backends import Backend, BackendOptions, backend_class
from lanai.batching import Batcher, Timing
from lanai.config import Settings
from lanai.errors import BadInput, LanaiError, ModelLoadError, ModelNotFound, NotReady, VersionNotFound
from lanai.pipelines import Pipeline, PipelineResult, load_pipelines, run_pipeline
from lanai.store import Manifest, Store
from lanai.tasks.classify import load_labels, rank, ranked
from lanai.tasks.image import image_to_tensor
from lanai.telemetry.memory import release_free_memory
from lanai.telemetry.metrics import Metrics
from lanai.types import (
    LANGUAGE_TASKS,
    BatchingConfig,
    Classification,
    ImagePreprocess,
    InferRequest,
    InferResponse,
    ModelInfo,
    TensorSpec,
    datatype_of,
)

if TYPE_CHECKING:
    from lanai.generation import Engine, GenerateRequest, Generation

__all__ = ["Host", "LoadedModel"]

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """One model version, loaded and ready to take requests."""

    manifest: Manifest
    backend: Backend
    batcher: Batcher | None
    """Tensor models run through a batcher; language models through ``engine``."""
    labels: list[str]
    info: ModelInfo
    alone: Backend | None = None
    """A second session of the model with every core, for requests that find it idle."""
    engine: Engine | None = None
    loaded_at: float = field(default_factory=time.time)

    @property
    def queue_depth(self) -> int:
        if self.engine is not None:
            return self.engine.waiting
        return self.batcher.queue_depth if self.batcher is not None else 0

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return str(self.manifest.version)


class Host:
    """Loads models from ``store`` and runs requests on them."""

    def __init__(self, store: Store, settings: Settings, metrics: Metrics | None = None) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.models: dict[str, LoadedModel] = {}
        self.failed: dict[str, str] = {}
        """Models whose active version did not load, with the reason."""
        self._pipelines: dict[str, Pipeline] = {}
        self._failed_pipelines: dict[str, str] = {}
        self._pipelines_seen: tuple[float, int] | None = None
        """The pipelines folder's state when last read (see ``pipelines``)."""
        self.started_at = time.time()
        self.ready = False
        self._swap_lock = asyncio.Lock()

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load every model that has an active version. A model that fails is logged, not fatal."""
        for summary in self.store.list():
            if summary.active is None:
                continue
            try:
                await self.load(summary.name)
            except LanaiError as exc:
                log.error("model %s did not load: %s", summary.name, exc)
        release_free_memory()
        self.ready = True

    async def shutdown(self, timeout: float | None = None) -> None:
        """Stop taking requests, let queued ones finish (up to ``timeout`` s), unload everything."""
        self.ready = False
        timeout = self.settings.shutdown_timeout if timeout is None else timeout
        await asyncio.gather(*(self._unload(m, timeout) for m in list(self.models.values())))
        self.models.clear()

    async def load(self, name: str) -> ModelInfo:
        """Load (or reload) the active version of ``name``; the old version serves until the new is ready."""
        async with self._swap_lock:
            manifest = self.store.manifest(name)
            try:
                model = await asyncio.to_thread(self._open, manifest)
            except LanaiError as exc:
                self.failed[name] = str(exc)
                raise
            old = self.models.get(name)
            self.models[name] = model
            self.failed.pop(name, None)
            info = model.info
            self.metrics.model_loaded(name, info.version, info.backend, info.execution_provider)
            log.info("serving %s version %s on %s", name, info.version, info.execution_provider)
        if old is not None:
            await self._unload(old, self.settings.shutdown_timeout)
            release_free_memory()
        return info

    async def unload(self, name: str) -> None:
        async with self._swap_lock:
            model = self.models.pop(name, None)
            self.failed.pop(name, None)
        if model is None:
            raise ModelNotFound(f"model {name!r} is not loaded.", hint="GET /v2/repository/index lists models.")
        self.metrics.model_unloaded(name)
        await self._unload(model, self.settings.shutdown_timeout)

    async def _unload(self, model: LoadedModel, timeout: float) -> None:
        if model.batcher is not None:
            await model.batcher.close(timeout)
        if model.engine is not None:
            await asyncio.to_thread(model.engine.close, timeout)
        model.backend.close()
        if model.alone is not None:
            model.alone.close()

    def _open(self, manifest: Manifest) -> LoadedModel:
        """Load ``manifest``'s model file on its backend (blocking: call it in a thread)."""
        if manifest.task in LANGUAGE_TASKS:
            return self._open_language_model(manifest)
        batching = _instances(manifest.batching)
        options = _backend_options(manifest, self.settings, batching.instances)
        backend = self._load_backend(manifest, options)
        alone = None
        if batching.instances > 1 and options.intra_op_threads < (os.cpu_count() or 1):
            # Instances share the cores under load; a request on an idle model gets them all, with threads
            # that spin a moment after each run, so the next lone request finds them awake (measured: c1 p50
            # -0.6 ms, +15 % req/s; they sleep once the model is idle, and under load this session rests).
            lone = replace(options, intra_op_threads=self.settings.intra_op_threads, allow_spinning=True)
            alone = self._load_backend(manifest, lone)
        labels = []
        if "labels" in manifest.files:
            labels = load_labels(self.store.file_path(manifest, "labels").read_text(encoding="utf-8"))
        batching = _effective_batching(batching, backend)
        name = manifest.name
        batcher = Batcher(
            backend.run, batching, observer=lambda stats: self.metrics.observe_batch(name, stats),
            run_alone=alone.run if alone else None, name=f"lanai-{name}",
        )  # fmt: skip
        info = ModelInfo(
            name=name,
            version=str(manifest.version),
            task=manifest.task,
            backend=manifest.backend,
            platform=backend.platform,
            inputs=backend.inputs,
            outputs=backend.outputs,
            execution_provider=backend.execution_provider,
            max_batch_size=batching.max_batch_size,
        )
        return LoadedModel(manifest, backend, batcher, labels, info, alone)

    def _open_language_model(self, manifest: Manifest) -> LoadedModel:
        from lanai.backends.llamacpp import LlamaCppBackend
        from lanai.generation import Engine

        options = _backend_options(manifest, self.settings, 1)
        if manifest.task == "embed":  # one sequence at a time, and pooled outputs instead of logits
            options = replace(options, extra={"parallel": 1, **options.extra, "embeddings": True})
        backend = self._load_backend(manifest, options)
        if not isinstance(backend, LlamaCppBackend):
            backend.close()
            raise ModelLoadError(
                f"{manifest.name} is a {manifest.task} model on backend {manifest.backend!r}.",
                hint="language models run on the llamacpp backend (a .gguf file).",
            )
        name = manifest.name
        engine = Engine(
            backend, max_queue=manifest.batching.max_queue_size, name=f"lanai-{name}",
            observer=lambda usage: self.metrics.observe_generation(name, usage),
        )  # fmt: skip
        info = ModelInfo(
            name=name, version=str(manifest.version), task=manifest.task, backend=manifest.backend,
            platform=backend.platform, inputs=(), outputs=(), execution_provider=backend.execution_provider,
            max_batch_size=backend.parallel,
        )  # fmt: skip
        return LoadedModel(manifest, backend, None, [], info, engine=engine)  # type: ignore[arg-type]

    def _load_backend(self, manifest: Manifest, options: BackendOptions) -> Backend:
        try:
            return backend_class(manifest.backend).load(self.store.file_path(manifest, "model"), options)
        except LanaiError:
            raise
        except Exception as exc:
            raise ModelLoadError(f"{manifest.name} version {manifest.version} did not load: {exc}") from exc

    # -- lookups -----------------------------------------------------------------------------------

    def get(self, name: str, version: str | None = None) -> LoadedModel:
        """The loaded model ``name``; with ``version``, only if that is the version loaded."""
        self._check_ready()
        model = self.models.get(name)
        if model is None:
            raise self._not_found(name)
        if version not in (None, "", model.version):
            raise VersionNotFound(
                f"model {name!r} has version {model.version} loaded, not {version!r}.",
                hint=f"activate it first: lanai models activate {name} {version}",
            )
        return model

    def _check_ready(self) -> None:
        if not self.ready and not self.models:
            raise NotReady("the server is starting or shutting down.", hint="retry in a moment.")

    def _not_found(self, name: str) -> ModelNotFound:
        if name in self.failed:
            return ModelNotFound(f"model {name!r} failed to load: {self.failed[name]}")
        loaded = ", ".join(sorted(self.models)) or "none"
        return ModelNotFound(f"no model named {name!r} is loaded.", hint=f"loaded models: {loaded}.")

    def default_model(self) -> LoadedModel:
        """The model that /v1/infer and /predict use."""
        self._check_ready()
        name = self.settings.default_model
        if name:
            return self.get(name)
        if len(self.models) == 1:
            return next(iter(self.models.values()))
        for model in self.models.values():
            if model.manifest.task == "classify":
                return model
        raise ModelNotFound("no default model is set and none is loaded.", hint="set default_model.")

    # -- requests ----------------------------------------------------------------------------------

    async def infer(self, name: str, request: InferRequest, version: str | None = None) -> tuple[InferResponse, Timing]:
        """Run a request of named tensors through the model's batcher."""
        model = self.get(name, version)
        batcher = _batcher(model)
        _validate(model.info, request)
        outputs, timing = await batcher.submit(request.inputs)
        if request.outputs:
            outputs = {k: outputs[k] for k in request.outputs}
        return InferResponse(model.name, model.version, outputs, request.id), timing

    async def classify(self, name: str, image: bytes, k: int = 5, version: str | None = None) -> Classification:
        """Decode ``image``, run it on the classifier ``name`` and return the ``k`` best labels."""
        start = time.perf_counter_ns()
        model = self.get(name, version)
        if model.manifest.task != "classify":
            hint = "use POST /v1/chat/completions or /v1/completions." if model.engine is not None else None
            raise BadInput(f"model {name!r} is a {model.manifest.task} model, not a classifier.", hint=hint)
        spec = model.manifest.preprocess or ImagePreprocess()
        input_name = model.info.inputs[0].name
        decode_ns = 0

        def prepare() -> dict[str, np.ndarray]:
            nonlocal decode_ns
            began = time.perf_counter_ns()
            tensor = image_to_tensor(image, spec, max_pixels=self.settings.max_image_pixels)
            decode_ns = time.perf_counter_ns() - began
            return {input_name: tensor}

        # Images are decoded on the thread that then runs their batch: one hand-off per request, and the
        # pixels stay in that core's cache (measured: 5–25 % more images/s than a separate decode pool).
        output_name = model.info.outputs[0].name

        def finish(outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            probs, order = rank(outputs[output_name])  # the whole batch at once, off the event loop
            return {"probabilities": probs, "order": order}

        outputs, timing = await _batcher(model).submit_prepared(prepare, key=("image", spec), finish=finish)
        self.metrics.preprocess_seconds.labels(model.name).observe(decode_ns / 1e9)
        predictions = ranked(outputs["probabilities"][0], outputs["order"][0], model.labels, k)
        timing_ms = {
            "preprocess_ms": round(decode_ns / 1e6, 3),
            # waiting for the batch to start, and for the other images of the batch to be decoded
            "queue_ms": round((timing.queue_ns + timing.prepare_ns - decode_ns) / 1e6, 3),
            "compute_ms": round(timing.compute_ns / 1e6, 3),
            "batch_size": timing.batch_size,
            "total_ms": round((time.perf_counter_ns() - start) / 1e6, 3),
        }
        return Classification(model.name, model.version, predictions, timing_ms)

    # -- language models ---------------------------------------------------------------------------

    def chat_tokens(self, name: str, messages: list[dict]) -> list[int]:
        """The prompt tokens of ``messages`` under the model's chat template."""
        from lanai.tasks.chat import render_chat

        model = self.get(name)
        backend = _engine(model).model
        prompt = render_chat(backend.chat_template, messages, bos=backend.bos_text, eos=backend.eos_text)
        starts_with_bos = bool(backend.bos_text) and prompt.startswith(backend.bos_text)
        return backend.tokenize(prompt, add_special=not starts_with_bos, parse_special=True)

    def text_tokens(self, name: str, text: str, *, add_special: bool = True) -> list[int]:
        return _engine(self.get(name)).model.tokenize(text, add_special=add_special)

    def generate(self, name: str, request: GenerateRequest) -> Generation:
        """Start generating for ``request``; iterate the result on this event loop."""
        model = self.get(name)
        if model.manifest.task == "embed":
            raise BadInput(f"model {name!r} is an embedding model; it does not generate text.")
        return _engine(model).submit(request)

    def pipelines(self) -> tuple[dict[str, Pipeline], dict[str, str]]:
        """The pipelines in ``<store>/pipelines``, and the files there that could not be read (with the
        reason); the folder is read again whenever a file in it has changed."""
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

    async def run_pipeline(self, name: str, image: bytes) -> PipelineResult:
        """Run the pipeline ``name`` on ``image`` (see ``lanai.pipelines``)."""
        self._check_ready()
        pipelines, failed = self.pipelines()
        pipeline = pipelines.get(name)
        if pipeline is None:
            if name in failed:
                raise ModelNotFound(f"pipeline {name!r} could not be read: {failed[name]}")
            known = ", ".join(sorted(pipelines)) or "none"
            raise ModelNotFound(f"no pipeline named {name!r}.", hint=f"pipelines: {known}.")
        return await run_pipeline(self, pipeline, image)

    async def embed(self, name: str, texts: list[str]) -> tuple[list[np.ndarray], int]:
        """One embedding per text, and the number of tokens read."""
        model = self.get(name)
        engine = _engine(model)
        if model.manifest.task != "embed":
            raise BadInput(
                f"model {name!r} is a {model.manifest.task} model; it was not loaded for embeddings.",
                hint="add the GGUF again with --task embed.",
            )
        tokens = [engine.model.tokenize(text) for text in texts]
        vectors = [await engine.embed(t) for t in tokens]
        return vectors, sum(len(t) for t in tokens)


def _engine(model: LoadedModel) -> Engine:
    if model.engine is None:
        raise BadInput(
            f"model {model.name!r} is a {model.manifest.task} model, not a language model.",
            hint="GET /v1/models lists the models; language models have task chat, completion or embed.",
        )
    return model.engine


def _batcher(model: LoadedModel) -> Batcher:
    if model.batcher is None:
        raise BadInput(
            f"model {model.name!r} is a {model.manifest.task} model; it takes text, not tensors or images.",
            hint="use POST /v1/chat/completions, /v1/completions or /v1/embeddings.",
        )
    return model.batcher


_MAX_AUTO_INSTANCES = 5


def _instances(config: BatchingConfig) -> BatchingConfig:
    """Resolve ``instances = 0`` (auto): one more than the cores on a multi-core machine (at most 5),
    else one. The extra instance keeps the cores busy while another waits for Python's GIL between its
    decoding and inference calls (measured on 2 cores: 1.82 instead of 1.71 busy cores, +5–7 % images/s)."""
    if config.instances:
        return config
    cores = os.cpu_count() or 1
    return replace(config, instances=min(cores + 1, _MAX_AUTO_INSTANCES) if cores >= 2 else 1)


def _backend_options(manifest: Manifest, settings: Settings, instances: int) -> BackendOptions:
    """The manifest's backend options over the server's settings. With several instances, the default
    thread count is the cores shared out among them."""
    given = manifest.backend_options
    threads = settings.intra_op_threads
    if not threads and instances > 1:
        threads = max(1, (os.cpu_count() or 1) // instances)
    return BackendOptions(
        providers=tuple(given.get("providers", settings.providers)),
        intra_op_threads=int(given.get("intra_op_threads", threads)),
        inter_op_threads=int(given.get("inter_op_threads", settings.inter_op_threads)),
        graph_optimization=str(given.get("graph_optimization", settings.graph_optimization)),
        allow_spinning=bool(given.get("allow_spinning", settings.allow_spinning)),
        extra={"delegates": settings.litert_delegates, **given} if settings.litert_delegates else dict(given),
    )


def _effective_batching(config: BatchingConfig, backend: Backend) -> BatchingConfig:
    """Batching is off for models whose batch axis is fixed."""
    fixed = backend.max_batch_size == 1 or any(spec.shape[:1] != (-1,) for spec in backend.inputs)
    if fixed and config.max_batch_size != 1:
        return replace(config, max_batch_size=1, max_queue_delay_us=0)
    return config


def _validate(info: ModelInfo, request: InferRequest) -> None:
    """Check names, datatypes and shapes against the model's metadata, with messages that say what to fix."""
    expected = {spec.name: spec for spec in info.inputs}
    unknown = set(request.inputs) - set(expected)
    if unknown:
        raise BadInput(
            f"model {info.name!r} has no input named {', '.join(sorted(unknown))}.",
            hint=f"its inputs are {', '.join(expected)}.",
        )
    batch = None
    for spec in info.inputs:
        if spec.name not in request.inputs:
            raise BadInput(f"input {spec.name!r} is missing.", hint=f"send {_describe(spec)}.")
        batch = _check_tensor(spec, request.inputs[spec.name], batch)
    names = {spec.name for spec in info.outputs}
    for wanted in request.outputs or ():
        if wanted not in names:
            raise BadInput(
                f"model {info.name!r} has no output named {wanted!r}.", hint=f"its outputs are {', '.join(names)}."
            )


def _check_tensor(spec: TensorSpec, array: np.ndarray, batch: int | None) -> int:
    datatype = datatype_of(array.dtype)
    if datatype != spec.datatype:
        raise BadInput(
            f"input {spec.name!r} is {datatype}, the model takes {spec.datatype}.", hint=f"send {_describe(spec)}."
        )
    shape = array.shape
    if len(shape) != len(spec.shape) or any(w not in (-1, g) for w, g in zip(spec.shape, shape)):
        raise BadInput(
            f"input {spec.name!r} has shape {list(shape)}, the model takes {list(spec.shape)} (-1: any size).",
            hint=f"send {_describe(spec)}.",
        )
    if shape and batch is not None and shape[0] != batch:
        raise BadInput(f"input {spec.name!r} has batch size {shape[0]}, other inputs have {batch}.")
    if shape and shape[0] == 0:
        raise BadInput(f"input {spec.name!r} has an empty batch.", hint="send at least one row.")
    return shape[0] if shape else 1


def _describe(spec: TensorSpec) -> str:
    return f"{spec.name} as {spec.datatype} with shape {list(spec.shape)}"
