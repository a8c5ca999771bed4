"""tf2onnx in a throwaway venv, for the scripts that convert TensorFlow models (frozen graphs, TF.js) to
ONNX. TensorFlow's protobuf and numpy pins fight lanai's, so it never goes into the caller's
environment: :func:`converter_python` makes a venv with it beside the caller's work, :func:`convert`
runs tf2onnx's command line there, and :func:`build_once` does both for a script, once per cache."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Callable
from pathlib import Path

PACKAGES = ("tensorflow-cpu==2.21.0", "onnx==1.17.0")
TF2ONNX = "tf2onnx==1.16.1"  # pins protobuf~=3.20, which TensorFlow 2.21 does not take: installed without its deps
OPSET = "13"

# tf2onnx 1.16.1 still names numpy aliases that numpy 2 (which TensorFlow 2.21 brings) removed
_CONVERT = """
import runpy
import numpy as np

class _Cast(dict):
    def __missing__(self, dtype):
        return lambda value: np.asarray(value).astype(dtype)

np.cast = _Cast()
np.product = np.prod
runpy.run_module("tf2onnx.convert", run_name="__main__", alter_sys=True)
"""


def run(command: list[str], **kwargs: object) -> None:
    print("+", " ".join(command), file=sys.stderr, flush=True)
    subprocess.run(command, check=True, **kwargs)  # type: ignore[call-overload]


def converter_python(work: Path) -> Path:
    """A fresh venv under ``work`` with TensorFlow and tf2onnx; its python."""
    env = work / "tf-venv"
    venv.EnvBuilder(with_pip=True).create(env)
    python = env / "bin" / "python"
    run([str(python), "-m", "pip", "install", "--quiet", *PACKAGES])
    run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", TF2ONNX])
    return python


def convert(python: Path, source: list[str], output: Path) -> None:
    """``python -m tf2onnx.convert SOURCE… --opset 13 --output OUTPUT`` in the converter's venv."""
    command = [str(python), "-c", _CONVERT, *source, "--opset", OPSET, "--output", str(output)]
    run(command, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""})


def build_once(out: Path, name: str, source: Callable[[Path], list[str]]) -> Path:
    """``out``, converted now unless it is there already: ``source(work)`` fetches the model into a
    scratch folder and gives tf2onnx's source arguments for it; the ONNX file appears whole or not at all."""
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"lanai-{name}-") as tmp:
        work = Path(tmp)
        arguments = source(work)
        partial = out.with_suffix(".part")
        convert(converter_python(work), arguments, partial)
        partial.replace(out)
    print(f"built {out} in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return out
