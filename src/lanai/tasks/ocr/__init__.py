"""The ocr task: the text lines of a page (or of every page of a TIFF or PDF) with their boxes and
confidences, in reading order, on PP-OCR-style models in three stages.

1. ``det``, a DB text detector: the page, resized to multiples of 32, → a text-probability map, whose
   regions become boxes (``geometry.db_boxes``) in the page's own pixels.
2. ``cls``, a line classifier (0° or 180°), when ``orientation`` is on: each box is cropped upright
   (``images.crop``; a tall box is a vertical line, turned 90°), upside-down lines are turned before
   reading, and the lines' angles vote for the page's rotation, which sets the reading order.
3. ``rec``, a CTC recogniser: each line at 48 pixels high, its width padded up to one of a few buckets
   so that lines of a page (and of other requests) share batches, → text by greedy CTC decoding with
   the character set stored beside the model (``ctc``).

Each stage is a model of the same stored version with its own batcher; the lines of a page are rows of
one batch where they fit. Pillow is imported only where pages are decoded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from lanai.errors import ModelLoadError
from lanai.protocol.wire import Wire, doc
from lanai.tasks.base import Rows, TaskModel
from lanai.tasks.ocr.ctc import best_paths, character_table, decode
from lanai.tasks.ocr.geometry import DbParams, crop_size, db_boxes, is_tall, page_angle, reading_order, scale_quads
from lanai.tasks.ocr.geometry import flips as turned_over
from lanai.tasks.staged import StagedTask, Stages

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["TASK", "OcrParams", "OcrResult", "OcrPage", "OcrTiming", "TextLine", "REC_WIDTHS"]

LINE_HEIGHT = 48
"""The height PP-OCR's classifier and recogniser read lines at."""
CLS_WIDTH = 192
REC_WIDTHS = (320, 384, 448, 512, 608, 736, 896, 1088, 1312, 1600, 1920, 2560)
"""Recognition widths: a line is padded to the smallest that holds it (wider ones are squeezed into the
last), so lines of similar length share a batch. Each is ~1.2× the last: the recogniser's time grows with
the width, so padding costs at most ~20 %. 320 is PP-OCR's own minimum."""
MIN_BOX_SIDE = 4
"""Boxes thinner than this many page pixels are dropped before reading."""


@dataclass(frozen=True)
class OcrParams(Wire):
    """Parameters of ocr."""

    min_confidence: float = doc("Lines read with a lower confidence are left out.", default=0.5, minimum=0, maximum=1)
    orientation: bool = doc(
        "Classify each line as upright or upside down (turning it over before reading), and find the page's "
        "rotation (0, 90, 180 or 270°) to put lines in reading order. false skips the classifier.",
        default=True,
    )
    dpi: int = doc("The resolution PDF pages are rendered at.", default=150, minimum=50, maximum=400)


@dataclass(frozen=True)
class TextLine(Wire):
    """One line of text."""

    text: str = doc("What it says.")
    confidence: float = doc("The recogniser's mean probability of its characters, 0–1.", minimum=0, maximum=1)
    box: tuple[tuple[int, ...], ...] = doc(
        "Its four corners [x, y] in the page's pixels, clockwise from the text's own top-left corner."
    )
    angle: int = doc("How far the line is turned clockwise: 0, 90, 180 or 270.")


@dataclass(frozen=True)
class OcrPage(Wire):
    """The lines of one page, in reading order."""

    page: int = doc("The page number, from 1.")
    width: int = doc("The page's width in pixels (for a PDF, at the requested dpi).")
    height: int = doc("The page's height in pixels.")
    angle: int = doc("How far the page is turned clockwise (0, 90, 180 or 270); 0 unless orientation is on.")
    text: str = doc("The lines' text, one per line.")
    lines: tuple[TextLine, ...] = doc("The lines, in reading order.")


@dataclass(frozen=True)
class OcrTiming(Wire):
    """Where the time went, in milliseconds. Stages of different pages overlap."""

    read_ms: float = doc("Decoding the image or rendering the PDF's pages.")
    detect_ms: float = doc("From the first page's detection request to the last page's boxes.")
    classify_ms: float = doc("The same span for the line classifier (0 when it was skipped).")
    recognise_ms: float = doc("The same span for the recogniser.")
    total_ms: float = doc("From the request's arrival at the data plane to its answer.")


@dataclass(frozen=True)
class OcrResult(Wire):
    """The text of a document, page by page."""

    model: str = doc("The model that answered.")
    version: str = doc("Its version.")
    text: str = doc("All the text: lines one per line, pages separated by a blank line.")
    pages: tuple[OcrPage, ...] = doc("Each page's lines.")
    timing: OcrTiming = doc("Where the time went.")


@dataclass
class _Spans:
    """The first start and last end of each stage's work for one request."""

    spans: dict[str, list[int]] = field(default_factory=dict)

    async def time(self, stage: str, work: Any) -> Any:
        began = time.perf_counter_ns()
        try:
            return await work
        finally:
            span = self.spans.setdefault(stage, [began, began])
            span[0], span[1] = min(span[0], began), max(span[1], time.perf_counter_ns())

    def ms(self, stage: str) -> float:
        first, last = self.spans.get(stage, (0, 0))
        return round((last - first) / 1e6, 3)


@dataclass(frozen=True)
class _Line:
    quad: np.ndarray
    size: tuple[int, int]
    """The straightened crop's (width, height) before a vertical line is turned."""

    @property
    def upright_size(self) -> tuple[int, int]:
        return (self.size[1], self.size[0]) if is_tall(self.size) else self.size


class Ocr(StagedTask[OcrParams, OcrResult]):
    name = "ocr"
    summary = "Read the text of an image, a multi-page TIFF or a PDF"
    kind = "tensor"
    accepts = "image"
    backends = ("onnx",)
    params = OcrParams
    result = OcrResult
    stages = ("det", "cls", "rec")
    stage_labels = {"rec": "characters"}

    def check_stage(self, stage: str, model: TaskModel) -> None:
        super().check_stage(stage, model)
        info = model.info
        if len(info.inputs) != 1 or len(info.inputs[0].shape) != 4 or info.inputs[0].shape[1] not in (3, -1):
            shapes = ", ".join(f"{s.name} {list(s.shape)}" for s in info.inputs)
            raise ModelLoadError(
                f"the ocr {stage} model takes one BGR image tensor [N, 3, H, W]; {info.name!r} takes {shapes}.",
                hint="PP-OCR's ONNX exports fit: lanai models add-ppocr sets them up.",
            )
        out = info.outputs[0].shape if info.outputs else ()
        expected = {"det": "[N, 1, H, W] text probabilities", "cls": "[N, 2] (0°, 180°) probabilities",
                    "rec": "[N, T, classes] CTC probabilities"}[stage]  # fmt: skip
        fits = {"det": len(out) == 4 and out[1] in (1, -1), "cls": len(out) == 2 and out[1] in (2, -1),
                "rec": len(out) == 3}[stage]  # fmt: skip
        if not fits:
            raise ModelLoadError(f"the ocr {stage} model must output {expected}; {info.name!r} outputs {list(out)}.")
        if stage == "rec":
            self._check_characters(model, out[2])

    @staticmethod
    def _check_characters(model: TaskModel, classes: int) -> None:
        if not model.labels:
            raise ModelLoadError(
                "the ocr recogniser has no character set.",
                hint="PP-OCR exports carry it in their metadata; otherwise add it with --stage characters=keys.txt.",
            )
        if classes > 0 and classes != len(model.labels) + 2:
            raise ModelLoadError(
                f"the recogniser has {classes} classes but its character set {len(model.labels)} characters "
                "(expected the characters, a CTC blank and a space).",
                hint="give the character list that was trained with this model.",
            )

    async def run(self, stages: Stages, data: Any, params: OcrParams) -> OcrResult:
        from lanai.tasks.ocr.pages import read_pages  # Pillow: only once a request needs it

        started = time.perf_counter_ns()
        det = stages.model("det")
        pages = await stages.call(partial(read_pages, data, max_pixels=det.max_image_pixels, dpi=params.dpi))
        read_ns = time.perf_counter_ns() - started
        spans = _Spans()
        read = await asyncio.gather(*(self._page(stages, n, page, params, spans) for n, page in enumerate(pages)))
        timing = OcrTiming(round(read_ns / 1e6, 3), spans.ms("det"), spans.ms("cls"), spans.ms("rec"),
                           round((time.perf_counter_ns() - started) / 1e6, 3))  # fmt: skip
        info = det.info
        return OcrResult(info.name, info.version, "\n\n".join(p.text for p in read), tuple(read), timing)

    async def _page(self, stages: Stages, number: int, page: Image.Image, params: OcrParams, spans: _Spans) -> OcrPage:
        lines = await spans.time("det", self._detect(stages, page))
        crops: list[Image.Image | None] = [None] * len(lines)
        flips = [False] * len(lines)
        if params.orientation and lines:
            jobs = [self._classify(stages, page, line, crops, i) for i, line in enumerate(lines)]
            upside_down = await spans.time("cls", asyncio.gather(*jobs))
            flips = turned_over([is_tall(line.size) for line in lines], upside_down, [max(ln.size) for ln in lines])
        reading = [self._recognise(stages, page, line, crops, i, flips[i]) for i, line in enumerate(lines)]
        read: Sequence[tuple[str, float]] = await spans.time("rec", asyncio.gather(*reading)) if lines else []
        angles = [(90 if is_tall(line.size) else 0) + (180 if flip else 0) for line, flip in zip(lines, flips)]
        weights = [float(max(line.size)) for line in lines]
        angle = page_angle(angles, weights) if params.orientation else 0
        quads = np.array([line.quad for line in lines]).reshape(-1, 4, 2)
        found = []
        for i in reading_order(quads, angle).tolist():
            text, confidence = read[i]
            if text.strip() and confidence >= params.min_confidence:
                corners = np.roll(np.rint(quads[i]).astype(int), -(angles[i] // 90), axis=0)
                box = tuple(tuple(point) for point in corners.tolist())
                found.append(TextLine(text, round(confidence, 5), box, angles[i]))
        text = "\n".join(line.text for line in found)
        return OcrPage(number + 1, page.width, page.height, angle, text, tuple(found))

    async def _detect(self, stages: Stages, page: Image.Image) -> list[_Line]:
        from lanai.tasks.ocr.images import det_input, det_size

        det = stages.model("det")
        size = det_size(page.width, page.height)
        input_name, output_name = det.info.inputs[0].name, det.info.outputs[0].name
        rows = await stages.run(
            "det", lambda: {input_name: det_input(page, size)}, ("det", size), partial(_db_finish, output_name)
        )
        quads = scale_quads(rows["quads"][0], page.width / size[0], page.height / size[1], page.width, page.height)
        lines = [_Line(quad, crop_size(quad)) for quad in quads]
        return [line for line in lines if min(line.size) >= MIN_BOX_SIDE]

    async def _classify(self, stages: Stages, page: Image.Image, line: _Line, crops: list, i: int) -> float:
        """The classifier's probability that the line is upside down."""
        from lanai.tasks.ocr.images import crop, line_input

        cls = stages.model("cls")
        input_name, output_name = cls.info.inputs[0].name, cls.info.outputs[0].name

        def prepare() -> Rows:
            crops[i] = crop(page, line.quad)  # kept for the recogniser
            return {input_name: line_input(crops[i], LINE_HEIGHT, CLS_WIDTH)}

        rows = await stages.run("cls", prepare, "cls")
        return float(rows[output_name][0][1])

    async def _recognise(
        self, stages: Stages, page: Image.Image, line: _Line, crops: list, i: int, flip: bool
    ) -> tuple[str, float]:
        from PIL import Image

        from lanai.tasks.ocr.images import crop, line_input, rec_width

        rec = stages.model("rec")
        input_name, output_name = rec.info.inputs[0].name, rec.info.outputs[0].name
        width = rec_width(*line.upright_size, LINE_HEIGHT, REC_WIDTHS)

        def prepare() -> Rows:
            upright = crops[i] if crops[i] is not None else crop(page, line.quad)
            if flip:
                upright = upright.transpose(Image.Transpose.ROTATE_180)
            crops[i] = None  # the crop is done with
            return {input_name: line_input(upright, LINE_HEIGHT, width)}

        finish = _ctc_finisher(output_name, rec.labels)
        rows = await stages.run("rec", prepare, ("rec", width), finish)
        return str(rows["text"][0]), float(rows["confidence"][0])


def _objects(items: Sequence[Any]) -> np.ndarray:
    """A 1-D object array of ``items`` (sliced per request like any batch output)."""
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def _db_finish(output_name: str, outputs: Rows) -> Rows:
    """The detector's batch of probability maps → each page's boxes, on the batch thread."""
    found = [db_boxes(prob[0], DbParams()) for prob in outputs[output_name]]
    return {"quads": _objects([q for q, _ in found]), "scores": _objects([s for _, s in found])}


_TABLES: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = {}


def _table(characters: tuple[str, ...]) -> tuple[str, ...]:
    """The class table of a loaded model's characters, made once per model (keyed by the very tuple)."""
    cached = _TABLES.get(id(characters))
    if cached is None or cached[0] is not characters:
        if len(_TABLES) >= 8:
            _TABLES.clear()
        cached = _TABLES[id(characters)] = (characters, character_table(characters))
    return cached[1]


def _ctc_finisher(output_name: str, characters: tuple[str, ...]) -> Callable[[Rows], Rows]:
    """The recogniser's batch → each line's text and confidence, on the batch thread. (Rows of one stage
    come from one model version, so whichever row's finish a batch runs reads them all alike.)"""
    table = _table(characters)

    def finish(outputs: Rows) -> Rows:
        index, prob = best_paths(outputs[output_name])
        read = [decode(i, p, table) for i, p in zip(index, prob)]
        return {"text": _objects([t for t, _ in read]), "confidence": np.array([c for _, c in read])}

    return finish


TASK = Ocr()
