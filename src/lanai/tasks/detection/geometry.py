"""Where an image sits inside a detector's input (letterbox or stretch), and the way back.

Pure arithmetic, no Pillow: the model sees ``input = original * scale + pad`` on each axis, so a box
found in the input's pixels maps back with ``(input - pad) / scale``, clipped to the original image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Placement", "letterbox", "stretch"]


@dataclass(frozen=True)
class Placement:
    """The original image (``width`` × ``height``) scaled by ``scale_x``/``scale_y`` and placed at
    ``pad_x``/``pad_y`` inside the model input; ``size`` is its resized width and height."""

    width: int
    height: int
    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int
    size: tuple[int, int]

    def boxes_to_original(self, boxes: np.ndarray) -> np.ndarray:
        """[K, 4] x1, y1, x2, y2 in input pixels → the original's pixels, inside the image."""
        out = (boxes - np.array([self.pad_x, self.pad_y] * 2, np.float32)) / np.array(
            [self.scale_x, self.scale_y] * 2, np.float32
        )
        np.clip(out[:, 0::2], 0, self.width, out=out[:, 0::2])
        np.clip(out[:, 1::2], 0, self.height, out=out[:, 1::2])
        return out  # type: ignore[no-any-return]

    def points_to_original(self, points: np.ndarray) -> np.ndarray:
        """[..., 2] x, y in input pixels → the original's pixels (not clipped: a point may lie outside)."""
        return (points - np.array([self.pad_x, self.pad_y], np.float32)) / np.array(  # type: ignore[no-any-return]
            [self.scale_x, self.scale_y], np.float32
        )


def letterbox(width: int, height: int, target_width: int, target_height: int) -> Placement:
    """Scale the whole image to fit the target, keeping its aspect ratio, and centre it (YOLO-style)."""
    scale = min(target_width / width, target_height / height)
    new_width = max(1, min(target_width, round(width * scale)))
    new_height = max(1, min(target_height, round(height * scale)))
    pad_x, pad_y = (target_width - new_width) // 2, (target_height - new_height) // 2
    return Placement(width, height, new_width / width, new_height / height, pad_x, pad_y, (new_width, new_height))


def stretch(width: int, height: int, target_width: int, target_height: int) -> Placement:
    """Resize to exactly the target size (aspect ratio not kept)."""
    return Placement(width, height, target_width / width, target_height / height, 0, 0, (target_width, target_height))
