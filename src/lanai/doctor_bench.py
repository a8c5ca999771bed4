"""``lanai doctor``'s benchmark: each active model of the store, loaded as the server loads it (digests
verified, the trial load in a child when ``canary_load``, then ``open_model``), timed on single requests
at batch 1. Tensor models run on zeros and noise of their own input shapes, straight on the session a
lone request gets; language models generate a few tokens greedily (embedding models embed a sentence)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

from lanai.config import Settings
from lanai.errors import LanaiError
from lanai.protocol.doctor import DoctorCheck, ModelBenchmark
from lanai.store import Manifest, Store

__all__ = ["benchmark_store", "benchmark_model"]

_WARMUP = 2
_TOKENS = 8
_PROMPT = "The quick brown fox"


def benchmark_store(settings: Settings, runs: int) -> tuple[tuple[ModelBenchmark, ...], list[DoctorCheck]]:
    """One benchmark and one check line per model with an active version."""
    if not settings.home.is_dir():
        return (), [DoctorCheck("models", "warn", f"no store at {settings.home}",
                                "lanai serve makes it with the bundled model; or pass --home")]  # fmt: skip
    store = Store(settings.home)
    results, checks = [], []
    for summary in store.list():
        if summary.active is None:
            continue
        try:
            manifest = store.manifest(summary.name)
        except LanaiError as exc:
            checks.append(DoctorCheck(f"model {summary.name}", "fail", str(exc), "lanai models show " + summary.name))
            continue
        result = benchmark_model(store, manifest, settings, runs)
        results.append(result)
        checks.append(_line(result))
    if not results:
        checks.append(DoctorCheck("models", "warn", "no model has an active version",
                                  "lanai models add FILE --name NAME --task TASK --activate"))  # fmt: skip
    return tuple(results), checks


def _line(result: ModelBenchmark) -> DoctorCheck:
    name = f"model {result.model}"
    if result.p50_ms is not None:
        return DoctorCheck(name, "ok", f"p50 {result.p50_ms:.2f} ms, p95 {result.p95_ms:.2f} ms over {result.runs} "
                           f"requests on {result.execution_provider} ({result.note})")  # fmt: skip
    if result.execution_provider is None:  # it did not load: the server could not serve it either
        return DoctorCheck(name, "fail", f"does not load: {result.note}",
                           f"lanai models show {result.model}; reinstall its runtime or roll back")  # fmt: skip
    return DoctorCheck(name, "skip", f"not benchmarked: {result.note}")


def benchmark_model(store: Store, manifest: Manifest, settings: Settings, runs: int) -> ModelBenchmark:
    """Load ``manifest``'s model, time ``runs`` single requests after a warm-up, close it."""
    from lanai.dataplane.models import LanguageModel, TensorModel

    def result(provider: str | None, count: int = 0, times: list | None = None, note: str = "") -> ModelBenchmark:
        p50 = p95 = None
        if times:
            p50, p95 = (round(float(v), 3) for v in np.percentile(times, [50, 95]))
        return ModelBenchmark(manifest.name, manifest.version, manifest.task, manifest.backend, provider, count,
                              p50, p95, note or None)  # fmt: skip

    try:
        model = asyncio.run(_open(store, manifest, settings))
    except LanaiError as exc:
        return result(None, note=str(exc))
    try:
        if isinstance(model, TensorModel):
            backend = model.alone or model.backend  # what a lone request on an idle model runs on
            feeds = _feeds(backend.inputs)
            request, what = (lambda: backend.run(feeds)), "batch 1, " + _describe(feeds)
        elif isinstance(model, LanguageModel):
            request, what = _language_request(model)
        else:
            return result(model.info.execution_provider, note=f"a {manifest.task} model of several stages")
        times = _time(request, runs)
    except Exception as exc:  # a model that rejects made-up input: said, not fatal
        return result(model.info.execution_provider, note=f"a request failed: {type(exc).__name__}: {exc}")
    finally:
        asyncio.run(model.close(settings.shutdown_timeout))
    return result(model.info.execution_provider, len(times), times, what)


async def _open(store: Store, manifest: Manifest, settings: Settings) -> Any:
    from lanai.dataplane.models import Observers, load_in_child_first, open_model, verify_files

    observers = Observers(lambda name, stats: None, lambda name, usage: None)

    async def loading() -> Any:
        await asyncio.to_thread(verify_files, store, manifest)
        if settings.canary_load:
            await load_in_child_first(store, manifest, settings)
        return await asyncio.to_thread(open_model, store, manifest, settings, observers)

    try:
        return await asyncio.wait_for(loading(), settings.load_timeout_s)
    except asyncio.TimeoutError:
        raise LanaiError(f"did not load within {settings.load_timeout_s:g} s") from None


def _time(request: Any, runs: int) -> list[float]:
    for _ in range(_WARMUP):
        request()
    times = []
    for _ in range(max(1, runs)):
        began = time.perf_counter()
        request()
        times.append((time.perf_counter() - began) * 1000)
    return times


def _feeds(inputs: tuple) -> dict[str, np.ndarray]:
    """An input of the model's own shapes: batch 1, free axes 32, noise for floats, zeros otherwise."""
    from lanai.types import dtype_of

    rng = np.random.default_rng(0)
    feeds = {}
    for spec in inputs:
        shape = [d if d > 0 else (1 if i == 0 else 32) for i, d in enumerate(spec.shape)]
        dtype = dtype_of(spec.datatype)
        if dtype.kind == "O":
            feeds[spec.name] = np.full(shape, b"", dtype=object)
        elif dtype.kind == "f":
            feeds[spec.name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[spec.name] = np.zeros(shape, dtype)
    return feeds


def _describe(feeds: dict[str, np.ndarray]) -> str:
    return ", ".join(f"{name} {'x'.join(map(str, array.shape))}" for name, array in feeds.items())


def _language_request(model: Any) -> tuple[Any, str]:
    from lanai.backends.base import BatchEntry, Sampling

    backend = model.backend
    prompt = backend.tokenize(_PROMPT) or [0]
    if model.manifest.task == "embed":
        return (lambda: backend.embed(prompt)), f"embedding {len(prompt)} tokens"

    def generate() -> None:  # on this thread: the engine's thread is idle, nothing else decodes
        backend.clear(0)
        backend.start(0, Sampling(temperature=0.0))
        index = backend.decode([BatchEntry(0, prompt, 0, True)])[0]
        position = len(prompt)
        for _ in range(_TOKENS - 1):
            token = backend.sample(0, index)
            index = backend.decode([BatchEntry(0, [token], position, True)])[0]
            position += 1
        backend.sample(0, index)
        backend.release(0)

    return generate, f"{len(prompt)}-token prompt, {_TOKENS} tokens greedy"
