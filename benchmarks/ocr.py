"""OCR through the server vs the same work in-process: time per page and pages/s at c=1 and c=4.

The server is `lanai serve` with the PP-OCR models (`lanai models add-ppocr`); each request posts
scikit-image's scanned page (384 × 191, 7 lines). In-process is the same work with no server and no
batching across pages: decode, detection, DB boxes, crops, line classifier, recogniser (a page's lines
of one width bucket in one run) and CTC decoding, in plain onnxruntime sessions using every core, driven
by `concurrency` threads. Rounds alternate between the two; the script prints medians and the ratio.

    python benchmarks/ocr.py --rounds 3 --duration 10 [--from rapidocr-3.10.0-py3-none-any.whl]
"""

from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from lanai.staged_cli import add_ppocr, find_ppocr
from lanai.store import Store
from lanai.tasks.ocr import CLS_WIDTH, LINE_HEIGHT, REC_WIDTHS
from lanai.tasks.ocr.ctc import best_paths, character_table, decode
from lanai.tasks.ocr.geometry import crop_size, db_boxes, flips, is_tall, reading_order, scale_quads
from lanai.tasks.ocr.images import crop, det_input, det_size, line_input, rec_width
from lanai.tasks.ocr.pages import read_pages

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Poster, arguments, interleave, report, start_server  # noqa: E402


def page_png() -> bytes:
    from skimage import data

    out = io.BytesIO()
    Image.fromarray(np.asarray(data.page())).save(out, "PNG")
    return out.getvalue()


class InProcess:
    """The OCR pipeline on plain onnxruntime sessions, one page at a time per thread."""

    def __init__(self, files: dict[str, Path]) -> None:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.det, self.cls, self.rec = (ort.InferenceSession(str(files[s]), options) for s in ("det", "cls", "rec"))
        characters = self.rec.get_modelmeta().custom_metadata_map["character"].split("\n")
        self.table = character_table(characters)

    def read(self, data: bytes) -> str:
        page = read_pages(data, max_pixels=50_000_000, dpi=150)[0]
        size = det_size(page.width, page.height)
        prob = self.det.run(None, {"x": det_input(page, size)})[0]
        quads = scale_quads(db_boxes(prob[0, 0])[0], page.width / size[0], page.height / size[1], *page.size)
        quads = [q for q in quads if min(crop_size(q)) >= 4]
        lines = [crop(page, q) for q in quads]
        if not lines:
            return ""
        upside = self.cls.run(None, {"x": np.concatenate([line_input(ln, LINE_HEIGHT, CLS_WIDTH) for ln in lines])})
        sizes = [crop_size(q) for q in quads]
        turn = flips([is_tall(s) for s in sizes], upside[0][:, 1].tolist(), [max(s) for s in sizes])
        upright = [ln.transpose(Image.Transpose.ROTATE_180) if flip else ln for ln, flip in zip(lines, turn)]
        widths = [rec_width(ln.width, ln.height, LINE_HEIGHT, REC_WIDTHS) for ln in upright]
        texts = [""] * len(lines)
        for width in set(widths):  # the lines of one width bucket in one run, as the server batches them
            chosen = [i for i, w in enumerate(widths) if w == width]
            x = np.concatenate([line_input(upright[i], LINE_HEIGHT, width) for i in chosen])
            index, prob_ = best_paths(self.rec.run(None, {"x": x})[0])
            for row, i in enumerate(chosen):
                texts[i] = decode(index[row], prob_[row], self.table)[0]
        return "\n".join(texts[i] for i in reading_order(np.stack(quads)))


def main() -> None:
    parser = arguments(__doc__.split("\n")[0], duration=10.0, concurrency=(1, 4))
    parser.add_argument("--from", dest="source", type=Path, help="rapidocr's wheel or a folder of its models")
    args = parser.parse_args()
    body = page_png()
    with tempfile.TemporaryDirectory() as tmp:
        files = find_ppocr(args.source, Path(tmp))
        home = Path(tmp) / "home"
        add_ppocr(Store(home), source=args.source)
        local = InProcess(files)
        proc, url = start_server(home)
        try:
            client = Poster(url)

            def served() -> None:
                client.post("/v1/models/ocr/ocr", body)

            served(), local.read(body)  # warm up both
            contenders = [("server", served), ("in-process", lambda: local.read(body))]
            results = interleave(contenders, args.rounds, args.concurrency, args.duration)
        finally:
            proc.terminate()
            proc.wait(30)
    report(results, args.concurrency, ("server", "in-process"), "pages")


if __name__ == "__main__":
    main()
