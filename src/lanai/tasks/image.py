"""Encoded image bytes → model input tensor, by the cheapest correct path.

JPEGs are decoded at reduced scale where that still leaves the shorter side at least ``resize`` pixels
(libjpeg's DCT scaling, via ``Image.draft``), and only the region that survives the centre crop is
resampled.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import (  # registered here: Image.open(formats=...) finds only formats already loaded
    BmpImagePlugin,
    GifImagePlugin,
    Image,
    ImageOps,
    JpegImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    UnidentifiedImageError,
    WebPImagePlugin,
)

from lanai.config import DEFAULT_MAX_PIXELS
from lanai.errors import BadInput, PayloadTooLarge
from lanai.types import ImagePreprocess

__all__ = ["decode_image", "preprocess", "image_to_tensor", "DEFAULT_MAX_PIXELS"]

_ORIENTATION = 0x0112
_FORMATS = "JPEG, PNG, WebP, BMP, GIF or TIFF"
READABLE = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")  # MPO comes through JPEG's opener
_PLUGINS = (BmpImagePlugin, GifImagePlugin, JpegImagePlugin, PngImagePlugin, TiffImagePlugin, WebPImagePlugin)
"""The formats lanai decodes, and no others: Pillow would also open EPS (through Ghostscript, a program
with a long record of exploits), PSD, ICO and a dozen more that no camera or app sends."""


def decode_image(
    data: bytes, *, min_side: int = 0, max_pixels: int = DEFAULT_MAX_PIXELS, color: str = "RGB"
) -> Image.Image:
    """Decode ``data`` to an upright image in ``color`` (``RGB`` or ``L``) whose shorter side is still
    at least ``min_side``.

    Raises BadInput for bytes that are not a readable image and PayloadTooLarge for an image of more
    than ``max_pixels`` pixels (checked from the header, before decoding: decompression bombs).
    """
    if not data:
        raise BadInput("the image is empty (0 bytes).", hint=f"send the bytes of a {_FORMATS} file.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # Pillow warns of corrupt EXIF (cameras write some) and reads on: so does lanai, without the noise
            warnings.simplefilter("ignore", UserWarning)
            img: Image.Image = Image.open(io.BytesIO(data), formats=READABLE)
            _check_pixels(img.size, max_pixels)
            if img.format == "JPEG" and min_side:
                img.draft(color, _draft_size(img.size, min_side))
            img.load()
            img = _eight_bit(_upright(img))
            return img if img.mode == color else img.convert(color)
    except Image.DecompressionBombError as exc:
        raise PayloadTooLarge(
            f"the image is over the {max_pixels / 1e6:.1f} megapixel limit ({exc}).",
            hint="downscale it before sending.",
        ) from None
    except UnidentifiedImageError:
        raise BadInput(
            "the body is not an image lanai can read.", hint=f"send the bytes of a {_FORMATS} file."
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BadInput(f"the image is corrupt or truncated ({exc}).", hint="send the whole file, unmodified.") from exc


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise PayloadTooLarge(
            f"the image is {width}×{height} = {width * height / 1e6:.1f} megapixels, over the "
            f"{max_pixels / 1e6:.1f} megapixel limit.",
            hint="downscale it before sending, or raise max_image_pixels in the server settings.",
        )
    if width < 1 or height < 1:
        raise BadInput(f"the image is {width}×{height} pixels.", hint="send a non-empty image.")


def _draft_size(size: tuple[int, int], min_side: int) -> tuple[int, int]:
    """The smallest size to ask libjpeg for that keeps the shorter side ≥ ``min_side``."""
    width, height = size
    scale = min_side / min(width, height)
    return max(1, int(width * scale + 0.999)), max(1, int(height * scale + 0.999))


def _eight_bit(img: Image.Image) -> Image.Image:
    """16-bit grey (PNG, TIFF) scaled to 8 bits: Pillow's own conversion clips it, to white. Pixels of
    32-bit integers or floats have no range to scale from, so they are refused."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return Image.fromarray((np.asarray(img) >> 8).astype(np.uint8))
    if img.mode in ("I", "F") or img.mode.startswith("I;"):
        kind = {"F": "floating-point", "I": "32-bit integer"}.get(img.mode, f"{img.mode} integer")
        raise BadInput(
            f"the image has {kind} pixels, which have no fixed brightness range.",
            hint="save it with 8 or 16 bits per channel (e.g. as an 8-bit PNG or JPEG).",
        )
    return img


_EXIF_FORMATS = ("JPEG", "MPO", "TIFF", "WEBP", "PNG")  # MPO: phones' JPEGs with a second picture


def _upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation that phone cameras set, when there is one."""
    if img.format in _EXIF_FORMATS and img.getexif().get(_ORIENTATION, 1) != 1:
        return ImageOps.exif_transpose(img)
    return img


def preprocess(img: Image.Image, spec: ImagePreprocess) -> np.ndarray:
    """Resize the shorter side to ``spec.resize``, centre-crop ``spec.crop``, normalise, lay out.

    Returns one image without the batch axis: [C, crop, crop] for NCHW, [crop, crop, C] for NHWC, where
    C is 3 for RGB and 1 for grey.
    Resize and crop happen in one resampling of just the source region that the crop keeps.
    """
    width, height = img.size
    scale = spec.resize / min(width, height)
    side = spec.crop / scale  # the crop's side, measured in source pixels
    left, top = (width - side) / 2, (height - side) / 2
    box = (max(0.0, left), max(0.0, top), min(width, left + side), min(height, top + side))
    pixels = np.asarray(img.resize((spec.crop, spec.crop), Image.Resampling.BILINEAR, box=box))
    if pixels.ndim == 2:  # grey
        pixels = pixels[:, :, np.newaxis]
    elif spec.channel_order == "BGR":
        pixels = pixels[:, :, ::-1]
    if spec.layout == "NCHW":
        pixels = pixels.transpose(2, 0, 1)
    if spec.dtype == "uint8":
        return np.ascontiguousarray(pixels)
    # One float array, written in place: fresh large arrays cost page faults, so make only one.
    channels = spec.channels
    shape = (channels, 1, 1) if spec.layout == "NCHW" else (1, 1, channels)
    mean = np.asarray(spec.mean[:channels], dtype=np.float32).reshape(shape)
    tensor = np.subtract(pixels, mean, dtype=np.float32, order="C")
    tensor *= (1.0 / np.asarray(spec.std[:channels], dtype=np.float32)).reshape(shape)
    return tensor


def image_to_tensor(data: bytes, spec: ImagePreprocess, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode and preprocess; the result has a batch axis of 1."""
    img = decode_image(data, min_side=spec.resize, max_pixels=max_pixels, color=spec.color)
    return preprocess(img, spec)[np.newaxis]
