from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from lanai.errors import BadInput, PayloadTooLarge
from lanai.tasks.image import decode_image, image_to_tensor, preprocess
from lanai.types import ImagePreprocess


def encode(img: Image.Image, fmt: str = "JPEG", **options: object) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **options)
    return buffer.getvalue()


def gradient(width: int, height: int) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None, None]
    pixels = np.concatenate([np.broadcast_to(x, (height, width, 1)), np.broadcast_to(y, (height, width, 1)),
                             np.full((height, width, 1), 128.0)], axis=2)  # fmt: skip
    return Image.fromarray(pixels.astype(np.uint8))


def test_shape_layout_and_normalisation() -> None:
    spec = ImagePreprocess(resize=32, crop=24, mean=(127.0,) * 3, std=(128.0,) * 3)
    tensor = image_to_tensor(encode(Image.new("RGB", (64, 48), (255, 127, 0)), "PNG"), spec)
    assert tensor.shape == (1, 3, 24, 24) and tensor.dtype == np.float32
    np.testing.assert_allclose(tensor[0, :, 5, 5], [1.0, 0.0, -127 / 128], atol=1e-6)
    nhwc = image_to_tensor(encode(Image.new("RGB", (64, 48)), "PNG"), ImagePreprocess(layout="NHWC", dtype="uint8"))
    assert nhwc.shape == (1, 224, 224, 3) and nhwc.dtype == np.uint8


def test_grey_models_get_one_channel_from_any_image() -> None:
    spec = ImagePreprocess(resize=8, crop=8, mean=(10.0,) * 3, std=(2.0,) * 3, color="L")
    for layout, shape in (("NCHW", (1, 1, 8, 8)), ("NHWC", (1, 8, 8, 1))):
        colour = image_to_tensor(encode(Image.new("RGB", (16, 16), (90, 90, 90)), "PNG"), replace(spec, layout=layout))
        assert colour.shape == shape
        np.testing.assert_allclose(colour, (90 - 10) / 2)
    assert ImagePreprocess.from_dict(spec.to_dict()) == spec


def test_centre_crop_matches_resize_then_crop() -> None:
    img = gradient(400, 300)
    spec = ImagePreprocess(resize=64, crop=48, mean=(0.0,) * 3, std=(1.0,) * 3, layout="NHWC")
    fast = preprocess(img, spec)
    resized = np.asarray(img.resize((85, 64), Image.Resampling.BILINEAR), dtype=np.float32)
    left, top = (85 - 48) // 2, (64 - 48) // 2
    slow = resized[top : top + 48, left : left + 48]
    assert np.abs(fast - slow).mean() < 3.0  # same picture; sub-pixel differences only


def test_jpeg_draft_keeps_enough_pixels() -> None:
    data = encode(gradient(2000, 1500), quality=95)
    img = decode_image(data, min_side=256)
    assert min(img.size) >= 256 and img.size[0] < 2000  # decoded at reduced scale
    assert decode_image(data).size == (2000, 1500)


def test_grey_palette_and_alpha_images_become_rgb() -> None:
    for mode in ("L", "P", "RGBA", "CMYK"):
        fmt = "JPEG" if mode == "CMYK" else "PNG"
        assert decode_image(encode(Image.new(mode, (20, 10)), fmt)).mode == "RGB"


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    data = encode(Image.new("RGB", (40, 20)), exif=exif.tobytes())
    assert decode_image(data).size == (20, 40)


@pytest.mark.parametrize(
    "data",
    [b"", b"hello, this is not an image", b"\x89PNG\r\n\x1a\n" + b"\0" * 30, b"\xff\xd8\xff\xe0" + b"garbage" * 5],
)
def test_non_images_are_bad_input(data: bytes) -> None:
    with pytest.raises(BadInput) as info:
        decode_image(data)
    assert info.value.hint


def test_truncated_jpeg_is_bad_input() -> None:
    data = encode(gradient(300, 200), quality=90)
    with pytest.raises(BadInput, match="corrupt or truncated"):
        decode_image(data[: len(data) // 2])


def test_decompression_bomb_is_refused_before_decoding() -> None:
    bomb = encode(Image.new("1", (20000, 20000)), "PNG")  # 400 megapixels in a few kB
    assert len(bomb) < 100_000
    with pytest.raises(PayloadTooLarge, match="megapixel"):
        decode_image(bomb, max_pixels=50_000_000)


@pytest.mark.parametrize("fmt", ["EPS", "ICO", "PPM", "TGA", "PCX", "SGI"])
def test_formats_no_camera_or_app_sends_are_not_even_opened(fmt: str) -> None:
    """EPS would run Ghostscript (if installed); the rest are attack surface no client needs."""
    import io

    from PIL import Image

    from lanai.errors import BadInput
    from lanai.tasks.image import decode_image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(buffer, fmt)
    with pytest.raises(BadInput, match="not an image lanai can read.*JPEG, PNG, WebP, BMP, GIF or TIFF"):
        decode_image(buffer.getvalue())
