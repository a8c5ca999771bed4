"""Redaction spans found in a document's OCR text, mapped back onto its pages: the boxes of the words to
black out, and the pages with those boxes filled in.

The OCR text is the ocr task's ``text``: each page's lines joined by a line break, pages by a blank line
(``lanai.tasks.ocr``), so a span's character offsets say which line(s) it covers and where in them. A
line's box is four corners clockwise from the text's own top-left, so a stretch of a line is the
matching stretch of its top and bottom edges (rotated lines included). OCR gives no character positions,
so they are estimated from typical widths in proportional type (an "i" or a "." is narrow, an "m" or a "@"
wide, a capital wider than a small letter), and the box reaches half a character further on each side,
plus ``padding`` pixels: a redaction that covers a little more than its words is safe; one that leaves
the last letter of a name showing is not. A span that runs over several lines gets a box on each.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lanai.errors import BadInput

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["PageBox", "map_spans", "black_out", "png_data_url"]

Point = tuple[float, float]


@dataclass(frozen=True)
class PageBox:
    """Where to black out one span (or the part of it on one line): a polygon in a page's pixels."""

    page: int
    """The page number, from 1."""
    polygon: tuple[Point, Point, Point, Point]
    type: str
    text: str

    def to_dict(self) -> dict[str, Any]:
        xs, ys = [p[0] for p in self.polygon], [p[1] for p in self.polygon]
        return {
            "page": self.page,
            "type": self.type,
            "text": self.text,
            "polygon": [[round(x, 1), round(y, 1)] for x, y in self.polygon],
            "box": [round(min(xs)), round(min(ys)), round(max(xs)), round(max(ys))],
        }


def _lines(ocr: Mapping[str, Any]) -> list[tuple[int, Mapping[str, Any], int]]:
    """Each line with its page number and where it starts in the OCR text."""
    found, at = [], 0
    for p, page in enumerate(ocr.get("pages", ())):
        if p:
            at += 2  # the blank line between pages
        for i, line in enumerate(page.get("lines", ())):
            if i:
                at += 1
            found.append((int(page.get("page", p + 1)), line, at))
            at += len(line["text"])
    if at != len(ocr.get("text", "")):
        raise BadInput(
            "the OCR step's text does not match its lines: the redaction cannot be placed on the page.",
            hint="redact the OCR step's own text ({ocr.text}), unchanged.",
        )
    return found


def map_spans(ocr: Mapping[str, Any], spans: Sequence[Mapping[str, Any]], padding: float = 2.0) -> list[PageBox]:
    """The page boxes of ``spans`` (offsets into the OCR ``text``), one per line each span touches."""
    boxes: list[PageBox] = []
    lines = _lines(ocr)
    for span in spans:
        start, end = int(span["start"]), int(span["end"])
        for page, line, at in lines:
            length = len(line["text"])
            a, b = max(start, at) - at, min(end, at + length) - at
            if a >= b:
                continue
            corners = [(float(x), float(y)) for x, y in line["box"]]
            edges = _edges(line["text"])
            slack = 0.5 * edges[-1] / length  # half an average character
            lo, hi = max(0.0, edges[a] - slack) / edges[-1], min(edges[-1], edges[b] + slack) / edges[-1]
            polygon = _stretch(corners, lo, hi, padding)
            boxes.append(PageBox(page, polygon, str(span.get("type", "")), line["text"][a:b]))
    return boxes


_NARROW = set("iljtfrI.,:;'|!()[]{}`\"")
_WIDE = set("mwMW@%&")


def _edges(text: str) -> list[float]:
    """Where each character starts along a line (and, last, where the line ends), in estimated widths."""
    edges, at = [0.0], 0.0
    for c in text:
        if c in _NARROW:
            at += 0.45
        elif c in _WIDE:
            at += 1.45
        elif c == " ":
            at += 0.5
        elif c.isupper():
            at += 1.2
        else:
            at += 1.0
        edges.append(at)
    return edges


def _stretch(corners: Sequence[Point], a: float, b: float, padding: float) -> tuple[Point, Point, Point, Point]:
    """The part of a line's quad from fraction ``a`` to ``b`` along its text, widened by ``padding``."""
    tl, tr, br, bl = corners

    def along(p: Point, q: Point, t: float) -> Point:
        return (p[0] + (q[0] - p[0]) * t, p[1] + (q[1] - p[1]) * t)

    quad = [along(tl, tr, a), along(tl, tr, b), along(bl, br, b), along(bl, br, a)]
    cx, cy = sum(x for x, _ in quad) / 4, sum(y for _, y in quad) / 4
    out = []
    for x, y in quad:  # push each corner away from the middle by ``padding`` on both axes
        out.append((x + (padding if x >= cx else -padding), y + (padding if y >= cy else -padding)))
    return (out[0], out[1], out[2], out[3])


def black_out(pages: Sequence[Image.Image], boxes: Sequence[PageBox]) -> list[Image.Image]:
    """Copies of ``pages`` with every box filled black."""
    from PIL import ImageDraw

    out = [page.convert("RGB") for page in pages]
    for box in boxes:
        if 1 <= box.page <= len(out):
            ImageDraw.Draw(out[box.page - 1]).polygon(list(box.polygon), fill=(0, 0, 0))
    return out


def png_data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
