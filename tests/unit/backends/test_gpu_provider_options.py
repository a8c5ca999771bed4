"""TensorRT and CUDA options on the ONNX backend, without a GPU: the option dictionaries lanai builds for ONNX
Runtime (names as ONNX Runtime documents them for its TensorRT and CUDA execution providers), what /health
shows of them, and that with those providers missing — the case on this machine — a model still loads on
the CPU. Whether a real TensorRT accepts them is not checked here (docs/hardware/jetson.md)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import onnxruntime as ort
import pytest

from lanai.backends import BackendOptions
from lanai.backends.onnx import OnnxBackend, _describe, engine_cache_dir, provider_options
from lanai.errors import ConfigError

from support import write_tiny_classifier

TRT, CUDA = "TensorrtExecutionProvider", "CUDAExecutionProvider"
DIGEST = "ab" * 32


@pytest.fixture
def blob(tmp_path: Path) -> Path:
    path = tmp_path / "store" / "blobs" / "sha256" / DIGEST
    path.parent.mkdir(parents=True)
    write_tiny_classifier(path)
    return path


def test_tensorrt_options(blob: Path, tmp_path: Path) -> None:
    table = tmp_path / "calibration.flatbuffers"
    table.write_bytes(b"calibration cache")
    extra = {"trt_fp16": True, "trt_int8": True, "trt_int8_calibration_table": str(table), "trt_workspace_mb": 2048,
             "device_id": 1, "decoder": "yolo"}  # fmt: skip
    options = provider_options(TRT, blob, extra)
    cache = tmp_path / "store" / "cache" / "tensorrt" / DIGEST[:32] / "fp16-int8"
    assert options == {
        "device_id": 1, "trt_fp16_enable": True, "trt_int8_enable": True, "trt_max_workspace_size": 2048 << 20,
        "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache),
        "trt_int8_calibration_table_name": "calibration.flatbuffers",
    }  # fmt: skip
    assert (cache / "calibration.flatbuffers").read_bytes() == b"calibration cache"  # where ORT looks for it
    assert _describe(TRT, options) == f"{TRT} (fp16, int8, engine cache, workspace 2048 MB, device 1)"


def test_tensorrt_defaults_cache_engines_per_file_and_precision(blob: Path, tmp_path: Path) -> None:
    options = provider_options(TRT, blob, {})
    assert options == {"trt_fp16_enable": False, "trt_int8_enable": False, "trt_engine_cache_enable": True,
                       "trt_engine_cache_path": str(engine_cache_dir(blob, "fp32"))}  # fmt: skip
    assert engine_cache_dir(blob, "fp32") == tmp_path / "store" / "cache" / "tensorrt" / DIGEST[:32] / "fp32"
    assert provider_options(TRT, blob, {"trt_engine_cache": False}) == {"trt_fp16_enable": False,
                                                                        "trt_int8_enable": False}  # fmt: skip
    elsewhere = tmp_path / "model.onnx"
    assert engine_cache_dir(elsewhere, "fp16") == tmp_path / "tensorrt-cache" / "fp16"


def test_a_missing_calibration_table_is_a_config_error(blob: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        provider_options(TRT, blob, {"trt_int8": True, "trt_int8_calibration_table": str(tmp_path / "none")})
    relative = provider_options(TRT, blob, {"trt_int8": True, "trt_int8_calibration_table": "table.cache"})
    assert relative["trt_int8_calibration_table_name"] == "table.cache"  # already in the cache folder


def test_cuda_options(blob: Path) -> None:
    extra = {"device_id": 0, "cuda_mem_limit_mb": 1024, "cuda_arena_extend_strategy": "kSameAsRequested",
             "cudnn_conv_algo_search": "HEURISTIC", "trt_fp16": True}  # fmt: skip
    options = provider_options(CUDA, blob, extra)
    assert options == {"device_id": 0, "gpu_mem_limit": 1 << 30, "arena_extend_strategy": "kSameAsRequested",
                       "cudnn_conv_algo_search": "HEURISTIC"}  # fmt: skip
    assert _describe(CUDA, options) == (f"{CUDA} (memory limit 1024 MB, cudnn_conv_algo_search HEURISTIC, "
                                        "arena_extend_strategy kSameAsRequested, device 0)")  # fmt: skip


def test_other_providers_get_none(blob: Path) -> None:
    extra = {"device_id": 1, "trt_fp16": True, "cuda_mem_limit_mb": 10}
    for provider in ("CPUExecutionProvider", "OpenVINOExecutionProvider"):
        assert provider_options(provider, blob, extra) == {}
    assert _describe("CPUExecutionProvider", {}) == "CPUExecutionProvider"


def test_without_those_providers_the_model_loads_on_the_cpu(blob: Path) -> None:
    assert TRT not in ort.get_available_providers()  # this machine: no GPU build of onnxruntime
    options = BackendOptions(providers=("tensorrt", "cuda", "cpu"), extra={"trt_fp16": True, "device_id": 0})
    backend = OnnxBackend.load(blob, options)
    assert backend.execution_provider == "CPUExecutionProvider"
    backend.close()


def test_the_options_reach_onnx_runtime_and_a_failing_provider_falls_back(
    blob: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """TensorRT and CUDA pretend to be built in and fail to start (as without their libraries): each was
    handed its options, and the model lands on the CPU."""
    real = ort.InferenceSession
    handed: list[Any] = []

    def session(path: str, sess_options: ort.SessionOptions, providers: list[Any]) -> ort.InferenceSession:
        handed.append(providers[0])
        if providers[0] == "CPUExecutionProvider":
            return real(path, sess_options=sess_options, providers=providers)
        raise RuntimeError("libnvinfer.so.10: cannot open shared object file")

    monkeypatch.setattr(ort, "get_available_providers", lambda: [TRT, CUDA, "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", session)
    extra = {"trt_fp16": True, "device_id": 0, "cuda_mem_limit_mb": 512}
    with caplog.at_level(logging.WARNING, logger="lanai.backends.onnx"):
        backend = OnnxBackend.load(blob, BackendOptions(providers=("tensorrt", "cuda", "cpu"), extra=extra))
    assert backend.execution_provider == "CPUExecutionProvider"
    assert handed[0][0] == TRT and handed[0][1]["trt_fp16_enable"] is True and handed[0][1]["device_id"] == 0
    assert handed[1] == (CUDA, {"device_id": 0, "gpu_mem_limit": 512 << 20})
    assert handed[2] == "CPUExecutionProvider"
    assert "TensorrtExecutionProvider could not load" in caplog.text
