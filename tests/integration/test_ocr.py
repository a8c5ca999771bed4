"""The ocr task over real HTTP, on the real PP-OCR models (rapidocr's wheel) and scikit-image's scanned page."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from assets_ocr import PAGE_LINES, character_accuracy, page_pixels, ppocr_models
from lanai.cli import main
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.store import Store
from support import RunningServer, ServerThread

MAX_PIXELS = 3_000_000


@pytest.fixture(scope="module")
def models() -> Path:
    found = ppocr_models()
    if found is None:
        pytest.skip("the PP-OCR models (rapidocr's wheel) cannot be fetched here")
    return found


@pytest.fixture(scope="module")
def ocr(tmp_path_factory: pytest.TempPathFactory, models: Path) -> Iterator[RunningServer]:
    """A server with the PP-OCR models, set up through the command line as a user would."""
    home = tmp_path_factory.mktemp("ocr-store")
    assert main(["models", "--home", str(home), "add-ppocr", "--from", str(models)]) == 0
    settings = Settings(home=home, max_body_bytes=8 * 2**20, max_image_pixels=MAX_PIXELS)
    plane = DataPlane(Store(home), settings)
    with ServerThread(plane, settings) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield RunningServer(url, plane, client)


def png(pixels: np.ndarray | Image.Image) -> bytes:
    img = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def page() -> Image.Image:
    return Image.fromarray(page_pixels())


def read(server: RunningServer, body: bytes, query: str = "") -> dict:
    r = server.client.post(f"/v1/models/ocr/ocr{query}", files={"file": ("page", body, "application/octet-stream")})
    assert r.status_code == 200, r.text
    return r.json()


def score(lines: list[dict]) -> tuple[float, int]:
    """Character accuracy of the page's text, and how many of its lines were read exactly."""
    found = [line["text"] for line in lines]
    exact = sum(1 for line in PAGE_LINES if line in found)
    return character_accuracy("\n".join(found), "\n".join(PAGE_LINES)), exact


def test_the_scanned_page_is_read_line_by_line(ocr: RunningServer) -> None:
    answer = read(ocr, png(page_pixels()))
    assert answer["model"] == "ocr" and len(answer["pages"]) == 1
    first = answer["pages"][0]
    accuracy, exact = score(first["lines"])
    print(f"page.png: character accuracy {accuracy:.3f}, {exact} of {len(PAGE_LINES)} lines exact")
    assert accuracy >= 0.95 and exact >= 6
    assert (first["width"], first["height"], first["angle"]) == (384, 191, 0)
    assert answer["text"] == first["text"] == "\n".join(line["text"] for line in first["lines"])
    tops = [min(y for _, y in line["box"]) for line in first["lines"]]
    assert tops == sorted(tops)  # reading order, top to bottom
    title = first["lines"][0]
    assert title["text"] == "Region-based segmentation" and title["angle"] == 0 and title["confidence"] > 0.9
    (x0, y0), _, (x2, y2), _ = title["box"]  # the title's own pixels, in the original image
    assert abs(x0 - 4) <= 4 and abs(y0 - 9) <= 4 and abs(x2 - 296) <= 6 and abs(y2 - 36) <= 4
    assert set(answer["timing"]) == {"read_ms", "detect_ms", "classify_ms", "recognise_ms", "total_ms"}


@pytest.mark.parametrize("turn", [180, 90])
def test_a_turned_page_is_put_upright(ocr: RunningServer, turn: int) -> None:
    answer = read(ocr, png(page().rotate(-turn, expand=True)))  # Pillow turns counter-clockwise
    first = answer["pages"][0]
    accuracy, exact = score(first["lines"])
    print(f"page.png turned {turn}°: character accuracy {accuracy:.3f}, {exact} lines exact")
    assert first["angle"] == turn and accuracy >= 0.95 and exact >= 6
    assert all(line["angle"] == turn for line in first["lines"])
    assert first["lines"][0]["text"] == "Region-based segmentation"


def test_orientation_off_skips_the_classifier(ocr: RunningServer) -> None:
    answer = read(ocr, png(page_pixels()), "?orientation=false&min_confidence=0.9")
    assert answer["timing"]["classify_ms"] == 0 and answer["pages"][0]["angle"] == 0
    assert all(line["confidence"] >= 0.9 for line in answer["pages"][0]["lines"])
    assert score(answer["pages"][0]["lines"])[0] >= 0.9


def test_a_two_page_tiff_is_one_request(ocr: RunningServer) -> None:
    second = page().crop((0, 0, 384, 40))  # just the title
    out = io.BytesIO()
    page().save(out, "TIFF", save_all=True, append_images=[second])
    answer = read(ocr, out.getvalue())
    assert [p["page"] for p in answer["pages"]] == [1, 2]
    assert score(answer["pages"][0]["lines"])[0] >= 0.95
    assert answer["pages"][1]["text"] == "Region-based segmentation"
    assert answer["text"] == answer["pages"][0]["text"] + "\n\n" + answer["pages"][1]["text"]


def test_a_pdf_is_one_request(ocr: RunningServer) -> None:
    pytest.importorskip("pypdfium2")
    out = io.BytesIO()
    scan = page().convert("RGB")
    scan.save(out, "PDF", save_all=True, append_images=[scan.rotate(180)], resolution=100)
    answer = read(ocr, out.getvalue(), "?dpi=100")
    assert len(answer["pages"]) == 2
    for number, sheet in enumerate(answer["pages"]):
        assert abs(sheet["width"] - 384) <= 1 and abs(sheet["height"] - 191) <= 1  # 100 dpi, as it was made
        accuracy, exact = score(sheet["lines"])
        print(f"PDF page {number + 1}: character accuracy {accuracy:.3f}, {exact} lines exact")
        assert accuracy >= 0.95
    assert answer["pages"][1]["angle"] == 180


def test_a_blank_page_has_no_lines(ocr: RunningServer) -> None:
    answer = read(ocr, png(np.full((300, 400), 255, np.uint8)))
    assert answer["pages"][0]["lines"] == [] and answer["text"] == ""


def test_bad_input_is_refused_with_a_hint(ocr: RunningServer) -> None:
    for body, status, words in (
        (b"this is not an image", 400, "not an image"),
        (b"", 400, "no image"),
        (png(np.full((2000, 2000), 255, np.uint8)), 413, "megapixel"),
        (b"%PDF-1.4 truncated", 400, "PDF"),
    ):
        r = ocr.client.post("/v1/models/ocr/ocr", content=body, headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == status, r.text
        error = r.json()
        assert words in error["error"] and "Hint:" in error["error"], error
    r = ocr.client.post("/v1/models/ocr/ocr?dpi=5", content=png(page_pixels()))
    assert r.status_code == 400 and "dpi" in r.json()["error"]


def test_a_tiff_over_the_limit_in_all_is_refused(ocr: RunningServer) -> None:
    sheet = Image.new("L", (1500, 1000), 255)  # 1.5 MP each: two fit under 3 MP, three do not
    out = io.BytesIO()
    sheet.save(out, "TIFF", save_all=True, append_images=[sheet, sheet])
    r = ocr.client.post("/v1/models/ocr/ocr", content=out.getvalue())
    assert r.status_code == 413 and "in all" in r.json()["error"]


def test_a_stage_that_does_not_fit_is_refused_and_nothing_is_published(
    tmp_path: Path, models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home, det, cls = tmp_path / "home", models / "PP-OCRv6_det_small.onnx", models / "ch_ppocr_mobile_v2.0_cls_mobile.onnx"
    wrong = ["models", "--home", str(home), "add", str(det), "--name", "ocr", "--task", "ocr",
             "--stage", f"cls={cls}", "--stage", f"rec={cls}"]  # fmt: skip
    assert main(wrong) == 1  # a classifier is no recogniser: it has no character set
    assert "no character list" in capsys.readouterr().err
    characters = tmp_path / "keys.txt"
    characters.write_text("a\nb\n", encoding="utf-8")
    assert main([*wrong, "--stage", f"characters={characters}"]) == 1
    assert "rec model must output" in capsys.readouterr().err
    assert main([*wrong[:-2]]) == 1
    assert "needs every stage" in capsys.readouterr().err
    assert Store(home).list() == []


def test_a_version_whose_stage_fails_to_load_leaves_the_old_one_serving(tmp_path: Path, models: Path) -> None:
    import asyncio

    from lanai.bundled import inspector
    from lanai.errors import ModelLoadError
    from lanai.staged_cli import add_ppocr

    store = Store(tmp_path / "home")
    add_ppocr(store, source=models)
    det, cls = models / "PP-OCRv6_det_small.onnx", models / "ch_ppocr_mobile_v2.0_cls_mobile.onnx"
    # published around the checks of `models add` (as a damaged or hand-made store could hold it): its
    # recogniser is the classifier, with no character set
    store.add(det, name="ocr", task="ocr", attachments={"cls": cls, "rec": cls}, inspect=inspector("onnx"),
              activate=True)  # fmt: skip
    plane = DataPlane(store, Settings(home=store.root))

    async def scenario() -> None:
        store.activate("ocr", 1)
        await plane.start()
        assert plane.models["ocr"].version == "1"
        store.activate("ocr", 2)
        with pytest.raises(ModelLoadError, match="rec model must output|character set"):
            await plane.load("ocr")
        assert plane.models["ocr"].version == "1"  # still serving
        result = await plane.run_task("ocr", "ocr", png(page().crop((0, 0, 384, 40))), {})
        assert result.to_dict()["text"] == "Region-based segmentation"
        await plane.shutdown()

    asyncio.run(scenario())
