"""Hostile images against the real server: decompression bombs in every format a client might send (the
header declares a huge picture, the file is tiny), polyglots, EXIF orientation tricks and unusual pixel
modes. Each gets a quick, clear 4xx or the right answer, never a 5xx, and no memory is spent on it."""

from __future__ import annotations

import io
import resource
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
from assets_vision import write_emitter, yolov8_raw
from PIL import Image

from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.store import Store

from support import RunningServer, ServerThread, photo

LITE0 = "/v1/models/efficientnet-lite0/classify"
CLASSIFY = ("/v1/models/tiny/classify", LITE0, "/v1/infer")
DETECT = "/v1/vision/detection"
SECONDS = 3.0  # every refusal is answered within this, on 2 busy cores
GROWTH = 48 * 2**20  # an 8000 × 8000 RGB decode is 192 MB: a bomb that got decoded shows


# --- crafted files: the header says huge, the wire says small -------------------------------------------

CATS = ("tabby", "tiger cat", "Egyptian cat")  # ImageNet's cats: Chelsea may be any of them


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _save(img: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_bomb(w: int, h: int) -> bytes:
    """A real IHDR (8-bit grey) and a small, valid zlib stream of zero rows."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * (w + 1) * 16, 9)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def gif_bomb(w: int, h: int) -> bytes:
    screen = b"GIF89a" + struct.pack("<HHBBB", w, h, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    frame = b"," + struct.pack("<HHHHB", 0, 0, w, h, 0) + b"\x02\x02\x4c\x01\x00"
    return screen + frame + b";"


def jpeg_bomb(w: int, h: int) -> bytes:
    """A real 16 × 16 JPEG whose SOF0 says w × h."""
    data = bytearray(_save(Image.new("RGB", (16, 16), (200, 30, 30)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", h, w)
    return bytes(data)


def bmp_bomb(w: int, h: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 0, 2835, 2835, 0, 0)
    pixels = b"\0" * 256
    return b"BM" + struct.pack("<IHHI", 54 + len(pixels), 0, 0, 54) + info + pixels


def tiff_bomb(w: int, h: int) -> bytes:
    """One deflated strip of zeros under tags that say w × h, 8-bit grey."""
    strip = zlib.compress(b"\0" * 65536)
    tags = [(256, 4, w), (257, 4, h), (258, 3, 8), (259, 3, 8), (262, 3, 1), (273, 4, 0), (277, 3, 1),
            (278, 4, h), (279, 4, len(strip))]  # fmt: skip
    start = 8 + 2 + 12 * len(tags) + 4
    ifd = struct.pack("<H", len(tags))
    for tag, kind, value in tags:
        value = start if tag == 273 else value
        ifd += struct.pack("<HHI", tag, kind, 1) + (
            struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        )
    return b"II*\0" + struct.pack("<I", 8) + ifd + b"\0\0\0\0" + strip


def webp_bomb(w: int, h: int) -> bytes:
    """A real 4 × 4 lossless WebP whose VP8L header says w × h (at most 16384 a side)."""
    data = bytearray(_save(Image.new("RGB", (4, 4), (9, 9, 9)), "WEBP", lossless=True))
    assert data[12:16] == b"VP8L"
    bits = (w - 1) | ((h - 1) << 14) | (int.from_bytes(data[21:25], "little") & ~((1 << 28) - 1))
    data[21:25] = bits.to_bytes(4, "little")
    return bytes(data)


def webp_canvas_bomb(w: int, h: int) -> bytes:
    """An extended WebP: a VP8X canvas of w × h around a 4 × 4 picture."""
    body = _save(Image.new("RGB", (4, 4), (9, 9, 9)), "WEBP", lossless=True)[12:]
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\0" * 4 + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
    payload = b"WEBP" + vp8x + body
    return b"RIFF" + struct.pack("<I", len(payload)) + payload


BOMBS: dict[str, tuple[Callable[[int, int], bytes], int]] = {  # the largest side each format can declare
    "png": (png_bomb, 100_000), "gif": (gif_bomb, 65_535), "jpeg": (jpeg_bomb, 65_000), "bmp": (bmp_bomb, 100_000),
    "tiff": (tiff_bomb, 100_000), "webp": (webp_bomb, 16_384), "webp-vp8x": (webp_canvas_bomb, 100_000),
}  # fmt: skip


# --- the servers and what to expect of them ------------------------------------------------------------


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server whose one detect model answers the DeepStack endpoint (the shared server has none)."""
    root = tmp_path_factory.mktemp("hostile-detect")
    labels = root / "labels.txt"
    labels.write_text("person\nbicycle\ncup\n", encoding="utf-8")
    store = Store(root / "store")
    model = write_emitter(root / "v8.onnx", {"output0": yolov8_raw([(320, 320, 200, 100, 2, 0.9)])})
    store.add(model, name="yolo8", task="detect", labels=labels, inspect=_onnx_inspector())
    settings = Settings(home=store.root, intra_op_threads=1, max_image_pixels=20_000_000)
    plane = DataPlane(store, settings)
    with ServerThread(plane, settings) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield RunningServer(url, plane, client)


def _onnx_inspector() -> Callable[[Path], object]:
    from lanai.bundled import inspector

    return inspector("onnx")


@pytest.fixture(scope="module")
def chelsea() -> Image.Image:
    return Image.fromarray(photo("chelsea"))


def rss() -> int:
    return psutil.Process().memory_info().rss


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def refused(r: httpx.Response, status: int, seconds: float, *words: str) -> str:
    """The error message of a quick 4xx refusal, checked for ``words`` and a hint."""
    assert r.status_code == status, (r.status_code, r.text)
    assert seconds < SECONDS, f"{seconds:.2f} s to refuse"
    assert r.headers["content-type"].startswith("application/json")
    message = r.json()["error"]
    assert "Traceback" not in message and "Hint:" in message, message
    for word in words:
        assert word.lower() in message.lower(), message
    return message


def post(client: httpx.Client, path: str, data: bytes, *, form: bool) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    if form:
        r = client.post(path, files={"image" if path == DETECT else "file": ("x", data)})
    else:
        r = client.post(path, content=data, headers={"Content-Type": "application/octet-stream"})
    return r, time.perf_counter() - started


def top1(server: RunningServer, data: bytes) -> str:
    r = server.client.post(LITE0, files={"file": ("x", data)})
    assert r.status_code == 200, r.text
    return r.json()["predictions"][0]["label"]


@pytest.fixture
def warm(server: RunningServer, detector: RunningServer, chelsea: Image.Image) -> None:
    """Every endpoint has loaded its model before memory is measured."""
    jpeg = _save(chelsea, "JPEG", quality=90)
    for path in CLASSIFY:
        assert server.client.post(path, files={"file": ("c.jpg", jpeg)}).status_code == 200
    assert detector.client.post(DETECT, files={"image": ("c.jpg", jpeg)}).status_code == 200


# --- decompression bombs ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", BOMBS)
def test_decompression_bombs_are_refused_from_the_header(
    server: RunningServer, detector: RunningServer, warm: None, fmt: str
) -> None:
    craft, side = BOMBS[fmt]
    huge, over = craft(side, side), craft(8000, 8000)  # Pillow's own bomb limit refuses the first, lanai's the second
    assert len(huge) < 10_000 and len(over) < 10_000
    if fmt == "webp-vp8x":  # libwebp will not even open a canvas that does not match its one picture
        with pytest.raises(OSError, match="could not create decoder"):
            Image.open(io.BytesIO(over))
    else:
        with Image.open(io.BytesIO(over)) as header:  # the crafts are what they claim to be
            assert header.size == (8000, 8000)
    before, peak = rss(), peak_rss()
    for _ in range(3):
        for path in CLASSIFY:
            for form in (False, True):
                r, seconds = post(server.client, path, huge, form=form)
                refused(r, 413, seconds, "megapixel limit", "downscale")
                r, seconds = post(server.client, path, over, form=form)
                if fmt == "webp-vp8x":
                    refused(r, 400, seconds, "corrupt or truncated", "send the whole file")
                else:
                    refused(r, 413, seconds, "8000×8000", "over the 20.0 megapixel limit", "max_image_pixels")
        for data in (huge, over):
            r, seconds = post(detector.client, DETECT, data, form=True)
            assert r.status_code in (400 if data is over and fmt == "webp-vp8x" else 413,) and seconds < SECONDS, r.text
            assert r.json()["success"] is False and "Hint:" in r.json()["error"]
    grown, peaked = rss() - before, peak_rss() - peak
    assert grown < GROWTH and peaked < GROWTH, f"RSS grew {grown >> 20} MB, its peak {peaked >> 20} MB"
    assert top1(server, _save(Image.fromarray(photo("chelsea")), "PNG"))  # and it serves on


def test_compressed_png_metadata_bomb(server: RunningServer, chelsea: Image.Image) -> None:
    """An iCCP chunk that inflates to 200 MB: Pillow stops at its text-chunk limit, lanai says 400."""
    small = _save(chelsea.resize((32, 32)), "PNG")
    iccp = _chunk(b"iCCP", b"icc\0\0" + zlib.compress(b"\0" * 200_000_000, 9))
    data = small[:33] + iccp + small[33:]
    assert len(data) < 300_000
    before = rss()
    for form in (False, True):
        r, seconds = post(server.client, LITE0, data, form=form)
        refused(r, 400, seconds, "corrupt", "send the whole file")
    assert rss() - before < GROWTH


# --- polyglots --------------------------------------------------------------------------------------


def zip_of(name: str, content: bytes) -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, content)
    return buffer.getvalue()


def test_polyglots_are_read_as_the_image_they_start_with(server: RunningServer, chelsea: Image.Image) -> None:
    png = _save(chelsea, "PNG")
    expected = top1(server, png)
    script = b"<html><script>alert(document.domain)</script></html>"
    for tail in (zip_of("payload.html", script), script, b"\0" * 1000):
        r = server.client.post(LITE0, files={"file": ("x.png", png + tail)})
        assert r.status_code == 200 and r.json()["predictions"][0]["label"] == expected, r.text
        assert r.headers["content-type"].startswith("application/json") and b"<script" not in r.content
    # an HTML page with a PNG inside is not an image: refused, and nothing of it echoed back
    r, seconds = post(server.client, LITE0, script + png, form=False)
    refused(r, 400, seconds, "not an image")
    assert b"<script" not in r.content


def gif_js_polyglot() -> bytes:
    """A GIF that is also a script: the screen width's bytes are ``/*``, the tail closes the comment."""
    frame = Image.new("P", (8, 8), 1)
    frame.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    gif = bytearray(_save(frame, "GIF"))
    gif[6:8] = b"/*"  # a 10799-pixel-wide screen around the 8 × 8 frame
    assert b"*/" not in gif
    return bytes(gif) + b"*/=1;alert(document.domain);//"


def test_gif_javascript_polyglot(server: RunningServer) -> None:
    data = gif_js_polyglot()
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "GIF" and img.width == 0x2A2F
    for path in CLASSIFY:
        for form in (False, True):
            r, seconds = post(server.client, path, data, form=form)
            assert r.status_code == 200 and seconds < SECONDS, r.text  # a (blank) image like any other
            assert r.headers["content-type"].startswith("application/json") and b"alert" not in r.content


# --- EXIF orientation ---------------------------------------------------------------------------------

# orientation → the transpose that turns the upright photo into the pixels a camera stores with that tag
STORED = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270,
          5: Image.Transpose.TRANSPOSE, 7: Image.Transpose.TRANSVERSE}  # fmt: skip


def with_orientation(img: Image.Image, orientation: int, fmt: str) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = img.transpose(STORED[orientation]) if orientation in STORED else img
    options: dict[str, object] = {"exif": exif}
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = 95
    if fmt == "MPO":  # what phones save: the photo and a second picture (here the same), EXIF on the first
        options.update(save_all=True, append_images=[stored])
    return _save(stored, fmt, **options)


def ranking(server: RunningServer, data: bytes) -> list[tuple[str, float]]:
    r = server.client.post(LITE0 + "?top_k=5", files={"file": ("x", data)})
    assert r.status_code == 200, r.text
    return [(p["label"], p["score"]) for p in r.json()["predictions"]]


def distance(a: list[tuple[str, float]], b: list[tuple[str, float]]) -> float:
    """How far two top-5 rankings are apart: the largest score difference over the labels of either."""
    sa, sb = dict(a), dict(b)
    return max(abs(sa.get(label, 0.0) - sb.get(label, 0.0)) for label in sa.keys() | sb.keys())


UNDO = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_270, 8: Image.Transpose.ROTATE_90,
        5: Image.Transpose.TRANSPOSE, 7: Image.Transpose.TRANSVERSE}  # fmt: skip


def test_the_classifier_sees_rotated_photos_upright(server: RunningServer) -> None:
    """The tagged file ranks as the upright photo does (for lossy formats: as the file's own pixels turned
    upright by this test and sent as PNG), not as its pixels as stored do; its top label is the photo's."""
    for name in ("chelsea", "coffee"):
        upright = Image.fromarray(photo(name))
        original = ranking(server, _save(upright, "PNG"))
        for fmt in ("JPEG", "MPO", "PNG", "WEBP", "TIFF"):
            for orientation in (6, 8, 3, 5, 7):
                data = with_orientation(upright, orientation, fmt)
                expected = original
                if fmt in ("JPEG", "MPO", "WEBP"):
                    with Image.open(io.BytesIO(data)) as img:
                        assert img.format == fmt and img.getexif()[0x0112] == orientation
                        stored = img.convert("RGB")
                    expected = ranking(server, _save(stored.transpose(UNDO[orientation]), "PNG"))
                got = ranking(server, data)
                near = distance(got, expected)
                assert near < 0.02, (name, fmt, orientation, got, expected)
                assert got[0][0] == original[0][0] or expected is not original  # lossy: ties may swap
                if orientation in (6, 8):  # a quarter turn matters to the model: the check can fail
                    as_stored = ranking(server, _save(upright.transpose(STORED[orientation]), "PNG"))
                    assert distance(got, as_stored) > max(0.02, 5 * near), (name, fmt, orientation, got, as_stored)


def test_detection_boxes_come_back_in_upright_pixels(detector: RunningServer, chelsea: Image.Image) -> None:
    """The box the emitter reports is mapped to the upright image's size, for an MPO as for a JPEG."""
    boxes = {}
    for fmt in ("JPEG", "MPO"):
        r = detector.client.post(DETECT, files={"image": ("c", with_orientation(chelsea, 6, fmt))})
        assert r.status_code == 200, r.text
        [box] = r.json()["predictions"]
        boxes[fmt] = box
        assert box["x_max"] <= chelsea.width and box["y_max"] <= chelsea.height, (fmt, box)
    assert boxes["MPO"] == boxes["JPEG"]


@pytest.mark.parametrize("orientation", [0, 9, 255, 65535])
def test_nonsense_orientations_leave_the_image_as_stored(
    server: RunningServer, chelsea: Image.Image, orientation: int
) -> None:
    assert top1(server, with_orientation(chelsea, orientation, "JPEG")) == top1(server, _save(chelsea, "JPEG"))


def test_garbled_exif_is_not_fatal(server: RunningServer, detector: RunningServer, chelsea: Image.Image) -> None:
    """Pillow warns of corrupt EXIF and reads on; a warning must not become a 500 (the tests turn warnings
    into errors, as a server run with -W error would)."""
    jpeg = _save(chelsea, "JPEG", quality=95)
    expected = top1(server, jpeg)
    for exif in (b"Exif\0\0MM\0*\0\0\0\x08\xff\xff" + b"\x01" * 40, b"Exif\0\0II*\0\xff\xff\xff\x7f", b"Exif\0\0"):
        app1 = b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif
        data = jpeg[:2] + app1 + jpeg[2:]
        assert top1(server, data) == expected
        r = detector.client.post(DETECT, files={"image": ("x.jpg", data)})
        assert r.status_code == 200 and r.json()["count"] == 1, r.text


# --- pixel modes ------------------------------------------------------------------------------------


def test_pixel_modes_classify_like_the_rgb_original(server: RunningServer, chelsea: Image.Image) -> None:
    grey = chelsea.convert("L")
    expected, expected_grey = top1(server, _save(chelsea, "PNG")), top1(server, _save(grey, "PNG"))
    wide = Image.fromarray(np.asarray(grey).astype(np.uint16) * 257)  # 16-bit grey, the same picture
    assert wide.mode == "I;16"
    cases = {
        # lossy (JPEG, 256 colours): the picture changes a little, so any of ImageNet's three cats will do
        "CMYK JPEG": (_save(chelsea.convert("CMYK"), "JPEG", quality=95), CATS),
        "CMYK TIFF": (_save(chelsea.convert("CMYK"), "TIFF"), expected),
        "P with transparency": (_save(chelsea.quantize(256), "PNG", transparency=0), CATS),
        "RGBA": (_save(chelsea.convert("RGBA"), "PNG"), expected),
        "RGBA WebP": (_save(chelsea.convert("RGBA"), "WEBP", lossless=True), expected),
        "LA": (_save(grey.convert("LA"), "PNG"), expected_grey),
        "I;16 PNG": (_save(wide, "PNG"), expected_grey),
        "I;16 TIFF": (_save(wide, "TIFF"), expected_grey),
    }
    for name, (data, label) in cases.items():
        with Image.open(io.BytesIO(data)) as img:
            assert img.mode in name or name.startswith("P") and img.mode == "P", (name, img.mode)
        found = top1(server, data)
        assert found in label if isinstance(label, tuple) else found == label, (name, found)


@pytest.mark.parametrize(("mode", "words"), [("I", "32-bit integer"), ("F", "floating-point")])
def test_pixels_without_a_range_are_refused(server: RunningServer, chelsea: Image.Image, mode: str, words: str) -> None:
    """32-bit integer and float TIFFs: Pillow's conversion would clip them to a white or black picture
    that the model classifies with confidence; lanai says why it will not."""
    grey = np.asarray(chelsea.convert("L"))
    pixels = grey.astype(np.int32) * 257 if mode == "I" else grey.astype(np.float32) / 255
    img = Image.fromarray(pixels)
    assert img.mode == mode
    for path in CLASSIFY:
        r, seconds = post(server.client, path, _save(img, "TIFF"), form=True)
        refused(r, 400, seconds, words, "8 or 16 bits")
