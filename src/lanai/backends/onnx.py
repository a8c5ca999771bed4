"""ONNX Runtime backend: execution providers in priority order, falling back to the next that loads."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from lanai.backends.base import BackendOptions
from lanai.errors import BadInput, ConfigError, ModelLoadError
from lanai.types import TensorSpec

__all__ = ["OnnxBackend", "PROVIDER_ALIASES", "resolve_provider", "provider_options", "engine_cache_dir"]

log = logging.getLogger(__name__)

PROVIDER_ALIASES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "dml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "qnn": "QNNExecutionProvider",
    "xnnpack": "XnnpackExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
_CPU = "CPUExecutionProvider"
# Providers that run a model whole or not at all. ONNX Runtime hands the nodes a provider does not take to its
# CPU provider inside the same session, so a model OpenVINO refuses outright would still load "on OpenVINO"
# (and /health would say so) while every node ran on the CPU provider. For these, that fallback inside the
# session is turned off: a model they cannot run whole fails to load on them and goes to the next provider,
# with ONNX Runtime's reason in the log.
_WHOLE_GRAPH = frozenset({"OpenVINOExecutionProvider"})
_OPTIMIZATION = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
_DATATYPES = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


def resolve_provider(name: str) -> str:
    """``cuda`` → ``CUDAExecutionProvider``; full provider names pass through."""
    if name.endswith("ExecutionProvider"):
        return name
    try:
        return PROVIDER_ALIASES[name.lower()]
    except KeyError:
        raise ConfigError(
            f"unknown execution provider {name!r}.",
            hint=f"use one of {', '.join(PROVIDER_ALIASES)} or a full ONNX Runtime provider name.",
        ) from None


_TRT, _CUDA = "TensorrtExecutionProvider", "CUDAExecutionProvider"
_MB = 1 << 20


def engine_cache_dir(path: Path, precision: str) -> Path:
    """Where TensorRT keeps the engines it builds for the model file ``path``: ``<store>/cache/tensorrt/
    <digest>/<precision>/`` for a store blob, so an engine is built once per file, precision and device
    (ONNX Runtime names each engine after the GPU's compute capability); beside the file otherwise."""
    if path.parent.name == "sha256" and path.parent.parent.name == "blobs":
        return path.parents[2] / "cache" / "tensorrt" / path.name[:32] / precision
    return path.parent / "tensorrt-cache" / precision


def provider_options(provider: str, path: Path, extra: dict[str, Any]) -> dict[str, Any]:
    """ONNX Runtime's options for ``provider`` from a manifest's backend options (lanai's names: trt_fp16,
    trt_int8, trt_int8_calibration_table, trt_engine_cache, trt_engine_cache_path, trt_workspace_mb,
    device_id; cuda_mem_limit_mb, cuda_arena_extend_strategy, cudnn_conv_algo_search). Empty for the others."""
    found: dict[str, Any] = {}
    if "device_id" in extra and provider in (_TRT, _CUDA):
        found["device_id"] = int(extra["device_id"])
    if provider == _CUDA:
        if "cuda_mem_limit_mb" in extra:
            found["gpu_mem_limit"] = int(extra["cuda_mem_limit_mb"]) * _MB
        for key, name in (("cuda_arena_extend_strategy", "arena_extend_strategy"),
                          ("cudnn_conv_algo_search", "cudnn_conv_algo_search")):  # fmt: skip
            if key in extra:
                found[name] = str(extra[key])
    if provider != _TRT:
        return found
    fp16, int8 = bool(extra.get("trt_fp16", False)), bool(extra.get("trt_int8", False))
    found.update(trt_fp16_enable=fp16, trt_int8_enable=int8)
    if "trt_workspace_mb" in extra:
        found["trt_max_workspace_size"] = int(extra["trt_workspace_mb"]) * _MB
    cache = None
    if extra.get("trt_engine_cache", True):
        precision = "-".join(name for name, on in (("fp16", fp16), ("int8", int8)) if on) or "fp32"
        cache = Path(extra.get("trt_engine_cache_path") or engine_cache_dir(path, precision))
        found.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(cache))
    table = extra.get("trt_int8_calibration_table")
    if int8 and table:  # ONNX Runtime reads the table from the engine cache folder, by name
        found["trt_int8_calibration_table_name"] = _calibration_table(Path(str(table)), cache)
    return found


def _calibration_table(table: Path, cache: Path | None) -> str:
    if cache is None:
        raise ConfigError("trt_int8_calibration_table needs the engine cache, where ONNX Runtime looks for it.",
                          hint="leave trt_engine_cache on (the default).")  # fmt: skip
    if table.is_absolute():
        if not table.is_file():
            raise ConfigError(f"INT8 calibration table {table} does not exist.", hint="give the path of the file.")
        cache.mkdir(parents=True, exist_ok=True)
        if not (cache / table.name).is_file():
            shutil.copyfile(table, cache / table.name)
    return table.name


def _describe(provider: str, options: dict[str, Any]) -> str:
    """``TensorrtExecutionProvider (fp16, engine cache, device 0)``: what /health shows of the options."""
    if not options:
        return provider
    parts = [name for key, name in (("trt_fp16_enable", "fp16"), ("trt_int8_enable", "int8"),
             ("trt_engine_cache_enable", "engine cache")) if options.get(key)]  # fmt: skip
    if "trt_max_workspace_size" in options:
        parts.append(f"workspace {options['trt_max_workspace_size'] // _MB} MB")
    if "gpu_mem_limit" in options:
        parts.append(f"memory limit {options['gpu_mem_limit'] // _MB} MB")
    parts += [f"{key} {options[key]}" for key in ("cudnn_conv_algo_search", "arena_extend_strategy") if key in options]
    parts.append(f"device {options.get('device_id', 0)}")
    return f"{provider} ({', '.join(parts)})"


def _spec(arg: ort.NodeArg) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (arg.shape or ()))
    return TensorSpec(arg.name, _DATATYPES.get(arg.type, arg.type), shape)


def _session_options(options: BackendOptions) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.intra_op_num_threads = options.intra_op_threads
    so.inter_op_num_threads = options.inter_op_threads
    try:
        so.graph_optimization_level = _OPTIMIZATION[options.graph_optimization]
    except KeyError:
        raise ConfigError(
            f"unknown graph optimisation level {options.graph_optimization!r}.",
            hint=f"use one of {', '.join(_OPTIMIZATION)}.",
        ) from None
    # Threads spin while a run is going on (fast hand-offs between its parallel parts); between runs they
    # sleep unless allow_spinning, leaving the cores to HTTP and image decoding.
    so.add_session_config_entry("session.intra_op.allow_spinning", "1")
    so.add_session_config_entry("session.force_spinning_stop", "0" if options.allow_spinning else "1")
    so.log_severity_level = 3
    return so


def _provider_order(options: BackendOptions) -> list[str]:
    wanted = [resolve_provider(p) for p in options.providers]
    if _CPU not in wanted:
        wanted.append(_CPU)
    available = set(ort.get_available_providers())
    order = []
    for provider in dict.fromkeys(wanted):
        if provider in available:
            order.append(provider)
        else:
            log.debug("execution provider %s is not in this onnxruntime build; skipping it", provider)
    return order


class OnnxBackend:
    """An ONNX model on ONNX Runtime."""

    platform = "onnx_onnxv1"
    runtime_version = ort.__version__

    def __init__(self, session: ort.InferenceSession, provider: str) -> None:
        self._session = session
        self.execution_provider = provider
        self.inputs = tuple(_spec(a) for a in session.get_inputs())
        self.outputs = tuple(_spec(a) for a in session.get_outputs())
        self._output_names = [o.name for o in self.outputs]
        fixed_one = any(spec.shape[:1] == (1,) for spec in self.inputs)
        self.max_batch_size = 1 if fixed_one else 0

    @classmethod
    def load(cls, path: Path, options: BackendOptions) -> OnnxBackend:
        """Load ``path`` on the first provider of ``options.providers`` that works."""
        last_error: Exception | None = None
        for provider in _provider_order(options):
            so = _session_options(options)
            if provider in _WHOLE_GRAPH:
                so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
            extra = provider_options(provider, path, options.extra)
            try:
                session = ort.InferenceSession(str(path), sess_options=so,
                                               providers=[(provider, extra) if extra else provider])  # fmt: skip
            except Exception as exc:  # onnxruntime raises several unrelated classes here
                if provider in _WHOLE_GRAPH and "fallback to CPU EP has been explicitly disabled" in str(exc):
                    log.warning("%s does not take every node of %s, so the next provider loads it: %s",
                                provider, path.name, exc)  # fmt: skip
                else:
                    log.warning("%s could not load %s: %s", provider, path.name, exc)
                last_error = exc
                continue
            active = session.get_providers()[0]
            if active != provider:
                log.warning("%s was asked for but %s runs %s", provider, active, path.name)
            log.debug("%s runs on %s", path.name, active)
            return cls(session, _describe(active, extra) if active == provider else active)
        raise ModelLoadError(
            f"onnxruntime cannot load {path.name}: {last_error}",
            hint="check that the file is an ONNX model (not truncated) and that its opset is supported "
            f"by onnxruntime {ort.__version__}.",
        )

    def run(self, inputs: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        names = outputs or self._output_names
        batch = next(iter(inputs.values())).shape[0] if inputs else 1
        if self.max_batch_size == 1 and batch > 1:
            rows = [self._run(names, {k: v[i : i + 1] for k, v in inputs.items()}) for i in range(batch)]
            return {name: np.concatenate([r[name] for r in rows]) for name in names}
        return self._run(names, inputs)

    def _run(self, names: list[str], feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            results = self._session.run(names, feed)
        except (ort.capi.onnxruntime_pybind11_state.InvalidArgument, ValueError) as exc:
            raise BadInput(f"the model refused the input: {exc}") from exc
        return dict(zip(names, results))

    def close(self) -> None:
        del self._session
