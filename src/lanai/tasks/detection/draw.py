"""A detector's answer drawn on its image (``?draw=true``), for people checking a model by eye."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from PIL import ImageDraw

from lanai.tasks.image import decode_image

if TYPE_CHECKING:
    from lanai.tasks.detect import Detections

__all__ = ["draw_detections"]

_COLOURS = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
            (70, 240, 240), (240, 50, 230))  # fmt: skip


def draw_detections(data: bytes, result: Detections, *, quality: int = 90) -> bytes:
    """``data`` (an encoded image) with each detection's box, label and score, and its keypoints, as JPEG."""
    img = decode_image(data)
    pen = ImageDraw.Draw(img)
    line = max(2, round(min(img.size) / 200))
    for found in result.detections:
        colour = _COLOURS[found.index % len(_COLOURS)]
        box = found.box
        pen.rectangle((box.x1, box.y1, box.x2, box.y2), outline=colour, width=line)
        text = f"{found.label} {found.score:.2f}"
        left, top, right, bottom = pen.textbbox((box.x1, box.y1), text)
        lift = bottom - top + 2 * line
        y = box.y1 - lift if box.y1 >= lift else box.y1
        pen.rectangle((box.x1, y, box.x1 + right - left + 2 * line, y + lift), fill=colour)
        pen.text((box.x1 + line, y + line), text, fill=(255, 255, 255))
        for point in found.keypoints:
            r = line + 1
            pen.ellipse((point.x - r, point.y - r, point.x + r, point.y + r), fill=colour)
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()
