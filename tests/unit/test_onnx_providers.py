"""The ONNX backend's provider order without the providers: ONNX Runtime's session is replaced by one that
acts as OpenVINO's (or CUDA's) would, and the real CPU provider loads the real model after it."""

from __future__ import annotations

import logging
from pathlib import Path

import onnxruntime as ort
import pytest

from lanai.backends import BackendOptions
from lanai.backends.onnx import OnnxBackend

from support import write_tiny_classifier

FALLBACK = "session.disable_cpu_ep_fallback"
REFUSAL = (
    "[ONNXRuntimeError] : 1 : FAIL : This session contains graph nodes that are assigned to the default CPU EP, "
    "but fallback to CPU EP has been explicitly disabled by the user."
)


def config(so: ort.SessionOptions, key: str) -> str | None:
    try:
        return so.get_session_config_entry(key)
    except RuntimeError:  # not set
        return None


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> dict[str, str | None]:
    """Pretend OpenVINO and CUDA are built in; each refuses the model like a provider that does not take all
    of it would when CPU fallback is off. Records each provider's disable_cpu_ep_fallback setting."""
    real = ort.InferenceSession
    seen: dict[str, str | None] = {}

    def session(path: str, sess_options: ort.SessionOptions, providers: list[str]) -> ort.InferenceSession:
        seen[providers[0]] = config(sess_options, FALLBACK)
        if providers[0] == "CPUExecutionProvider":
            return real(path, sess_options=sess_options, providers=providers)
        raise RuntimeError(REFUSAL if seen[providers[0]] == "1" else f"{providers[0]} is not really here")

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["OpenVINOExecutionProvider", "CUDAExecutionProvider",
                                                                 "CPUExecutionProvider"])  # fmt: skip
    monkeypatch.setattr(ort, "InferenceSession", session)
    return seen


def test_a_model_openvino_does_not_take_whole_goes_to_cpu_with_the_reason(
    asked: dict[str, str | None], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = write_tiny_classifier(tmp_path / "tiny.onnx")
    with caplog.at_level(logging.WARNING, logger="lanai.backends.onnx"):
        backend = OnnxBackend.load(model, BackendOptions(providers=("openvino", "cpu")))
    assert backend.execution_provider == "CPUExecutionProvider"
    assert asked == {"OpenVINOExecutionProvider": "1", "CPUExecutionProvider": None}
    assert "OpenVINOExecutionProvider does not take every node of tiny.onnx" in caplog.text
    assert "fallback to CPU EP has been explicitly disabled" in caplog.text


def test_other_providers_keep_onnx_runtimes_cpu_fallback(
    asked: dict[str, str | None], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = write_tiny_classifier(tmp_path / "tiny.onnx")
    with caplog.at_level(logging.WARNING, logger="lanai.backends.onnx"):
        backend = OnnxBackend.load(model, BackendOptions(providers=("cuda", "cpu")))
    assert backend.execution_provider == "CPUExecutionProvider"
    assert asked == {"CUDAExecutionProvider": None, "CPUExecutionProvider": None}
    assert "CUDAExecutionProvider could not load tiny.onnx: CUDAExecutionProvider is not really here" in caplog.text
