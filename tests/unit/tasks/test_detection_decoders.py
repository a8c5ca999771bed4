"""Each detector family's decoder on raw outputs whose answer is known, and choosing a decoder."""

from __future__ import annotations

import numpy as np
import pytest
from assets_vision import yolov5_raw, yolov8_raw

from lanai.errors import ModelLoadError
from lanai.tasks.detection import DECODERS, choose_decoder
from lanai.tasks.detection.retinaface import priors
from lanai.types import TensorSpec


def spec(name: str, *shape: int) -> TensorSpec:
    return TensorSpec(name, "FP32", shape)


def test_yolov8_boxes_scores_and_classes() -> None:
    raw = yolov8_raw([(320, 320, 200, 100, 2, 0.9), (100, 50, 20, 40, 0, 0.6)])[np.newaxis]
    found = DECODERS["yolov8"].decode({"output0": raw}, (640, 640), {})
    np.testing.assert_allclose(found.boxes[0, :2], [[220, 270, 420, 370], [90, 30, 110, 70]])
    np.testing.assert_allclose(found.scores[0, :3], [0.9, 0.6, 0.0])
    assert found.classes[0, :2].tolist() == [2, 0] and found.keypoints is None


def test_yolov8_transposed_logits_and_pose_keypoints() -> None:
    raw = np.zeros((1, 32, 4 + 1 + 2 * 3), np.float32)  # [N, A, 4 + C + 3K]: one class, two points
    raw[0, 0] = [50, 60, 10, 20, 2.0, 45, 55, 3.0, 52, 58, -3.0]  # a logit score, visibilities as logits
    found = DECODERS["yolov8"].decode({"out": raw}, (640, 640), {"keypoints": 2})
    np.testing.assert_allclose(found.boxes[0, 0], [45, 50, 55, 70])
    assert found.scores[0, 0] == pytest.approx(1 / (1 + np.exp(-2.0)), rel=1e-5)
    np.testing.assert_allclose(found.keypoints[0, 0, :, :2], [[45, 55], [52, 58]])  # type: ignore[index]
    np.testing.assert_allclose(found.keypoints[0, 0, :, 2], 1 / (1 + np.exp(-np.array([3.0, -3.0]))), rtol=1e-5)  # type: ignore[index]


def test_yolov5_multiplies_objectness_and_reads_fractions() -> None:
    raw = yolov5_raw([(320, 320, 200, 100, 0.5, 1, 0.8)])[np.newaxis]
    found = DECODERS["yolov5"].decode({"output": raw}, (640, 640), {})
    np.testing.assert_allclose(found.boxes[0, 0], [220, 270, 420, 370])
    assert found.scores[0, 0] == pytest.approx(0.4) and found.classes[0, 0] == 1
    fractions = yolov5_raw([(0.5, 0.5, 0.25, 0.5, 1.0, 0, 0.9)])[np.newaxis]
    found = DECODERS["yolov5"].decode({"output": fractions}, (640, 320), {})
    np.testing.assert_allclose(found.boxes[0, 0], [240, 80, 400, 240])


def test_ssd_reads_normalised_yx_boxes_and_ignores_slots_past_num_detections() -> None:
    outputs = {
        "num_detections:0": np.array([2.0]),
        "detection_boxes:0": np.array([[[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0], [0.2, 0.2, 0.3, 0.3]]]),
        "detection_scores:0": np.array([[0.9, 0.5, 0.8]]),
        "detection_classes:0": np.array([[1.0, 3.0, 1.0]]),
    }
    found = DECODERS["ssd"].decode(outputs, (300, 200), {})
    np.testing.assert_allclose(found.boxes[0, :2], [[60, 20, 180, 100], [0, 0, 300, 200]], atol=1e-4)
    np.testing.assert_allclose(found.scores[0], [0.9, 0.5, 0.0])
    assert found.classes[0, :2].tolist() == [1, 3] and DECODERS["ssd"].label_offset == 1


def test_retinaface_priors_and_decoding() -> None:
    anchors = priors(64, 32)
    assert len(anchors) == 2 * (8 * 4 + 4 * 2 + 2 * 1)
    np.testing.assert_allclose(anchors[:3], [[4, 4, 16, 16], [4, 4, 32, 32], [12, 4, 16, 16]])
    np.testing.assert_allclose(anchors[-1], [48, 16, 512, 512])
    loc = np.zeros((1, len(anchors), 4), np.float32)
    conf = np.tile(np.array([0.9, 0.1], np.float32), (1, len(anchors), 1))
    marks = np.zeros((1, len(anchors), 10), np.float32)
    loc[0, 2] = [1.0, -1.0, np.log(2) / 0.2, 0.0]  # centre moved by 0.1 × 16 px, width doubled
    conf[0, 2] = [0.01, 0.99]
    marks[0, 2] = [1, 1, -1, -1, 0, 0, 2, 0, 0, 2]
    found = DECODERS["retinaface"].decode({"loc": loc, "conf": conf, "landmarks": marks}, (64, 32), {})
    np.testing.assert_allclose(found.boxes[0, 2], [13.6 - 16, 2.4 - 8, 13.6 + 16, 2.4 + 8], rtol=1e-5)
    assert found.scores[0, 2] == pytest.approx(0.99) and found.scores[0, 0] == pytest.approx(0.1)
    np.testing.assert_allclose(found.keypoints[0, 2, :, :2],  # type: ignore[index]
                               [[13.6, 5.6], [10.4, 2.4], [12, 4], [15.2, 4], [12, 7.2]], rtol=1e-5)  # fmt: skip
    logits = np.log(conf)  # unnormalised scores are put through a softmax
    again = DECODERS["retinaface"].decode({"loc": loc, "conf": logits, "landmarks": marks}, (64, 32), {})
    np.testing.assert_allclose(again.scores, found.scores, rtol=1e-5)


def gfl_level(cells: int, classes: int, hits: dict[int, tuple[int, float, list[int]]]) -> tuple[np.ndarray, ...]:
    """Scores [1, cells, classes] (logits) and distributions [1, cells, 32]: for each hit cell, a class
    score and the four distances (in bins) put as near one-hot distributions."""
    scores = np.full((1, cells, classes), -10.0, np.float32)
    dist = np.zeros((1, cells, 4, 8), np.float32)
    for cell, (cls, logit, sides) in hits.items():
        scores[0, cell, cls] = logit
        for side, b in enumerate(sides):
            dist[0, cell, side, b] = 30.0  # softmax ≈ one-hot
    return scores, dist.reshape(1, cells, 32)


def test_gfl_levels_strides_centres_and_distributions() -> None:
    s8, d8 = gfl_level(8 * 8, 3, {9: (1, 3.0, [1, 2, 3, 4])})  # cell (1, 1) of the stride-8 level
    s16, d16 = gfl_level(4 * 4, 3, {})
    outputs = {"cls8": s8, "reg8": d8, "cls16": s16.transpose(0, 2, 1), "reg16": d16.transpose(0, 2, 1)}
    found = DECODERS["gfl"].decode(outputs, (64, 64), {})
    assert found.boxes.shape == (1, 64 + 16, 4)
    centre = 1.5 * 8
    np.testing.assert_allclose(found.boxes[0, 9], [centre - 8, centre - 16, centre + 24, centre + 32], atol=1e-3)
    assert found.classes[0, 9] == 1 and found.scores[0, 9] == pytest.approx(1 / (1 + np.exp(-3.0)), rel=1e-5)
    assert found.scores[0].argmax() == 9
    nanodet_plus = DECODERS["gfl"].decode(outputs, (64, 64), {"center_offset": 0})
    np.testing.assert_allclose(nanodet_plus.boxes[0, 9, :2], [8 - 8, 8 - 16], atol=1e-3)


def test_choosing_a_decoder_from_outputs() -> None:
    assert choose_decoder([spec("output0", 1, 84, 8400)], {}).name == "yolov8"
    assert choose_decoder([spec("output", 1, 25200, 85)], {}, classes=80).name == "yolov5"
    assert choose_decoder([spec("output", 1, 8400, 84)], {}, classes=80).name == "yolov8"
    ssd = [spec(f"{role}:0", 1, 100) for role in ("num_detections", "detection_boxes", "detection_scores",
                                                  "detection_classes")]  # fmt: skip
    assert choose_decoder(ssd, {}).name == "ssd"
    face = [spec("loc", -1, -1, 4), spec("conf", -1, -1, 2), spec("landmarks", -1, -1, 10)]
    assert choose_decoder(face, {}).name == "retinaface"
    gfl = [spec("cls8", 1, 2704, 80), spec("reg8", 1, 2704, 32), spec("cls16", 1, 676, 80), spec("reg16", 1, 676, 32)]
    assert choose_decoder(gfl, {}).name == "gfl"
    assert choose_decoder([spec("output", 1, 25200, 85)], {"decoder": "yolov5"}).name == "yolov5"


def test_a_gfl_head_with_other_bins_is_told_by_its_labels_and_its_reg_max_read_off() -> None:
    gfl = DECODERS["gfl"]
    # NanoDet-EfficientLite: 4 × 11 bins (reg_max 10), and both widths divisible by 4, so only the labels tell
    wide = [spec("cls8", 1, 2704, 80), spec("reg8", 1, 2704, 44), spec("cls16", 1, 80, 676), spec("reg16", 1, 44, 676)]
    with pytest.raises(ModelLoadError, match="no detector decoder fits|could be decoded"):
        choose_decoder(wide, {})
    assert choose_decoder(wide, {}, classes=80).name == "gfl"
    assert gfl.settle(wide, 80, {}) == {"reg_max": 10}
    assert gfl.settle(wide, 80, {"reg_max": 9}) == {}  # what the user said stands
    with pytest.raises(ModelLoadError, match=r"not 32 wide.*widths: \[44, 80, 676, 2704\].*--option reg_max=N"):
        gfl.settle(wide, None, {})  # decoder=gfl without labels: reg_max 7 would not fit, so say so at add time
    same = [spec("cls8", 1, 2704, 44), spec("reg8", 1, 2704, 44), spec("cls16", 1, 676, 44), spec("reg16", 1, 676, 44)]
    with pytest.raises(ModelLoadError, match="not 32 wide"):
        gfl.settle(same, 44, {})  # 44 classes and 44 bins: nothing to tell them apart by


def test_an_unfit_or_ambiguous_model_is_refused_with_a_hint() -> None:
    with pytest.raises(ModelLoadError, match=r"could be decoded as .*Hint: name the family: --option decoder="):
        choose_decoder([spec("output", 1, 25200, 85)], {})  # v5 or v8 transposed: the labels would tell
    with pytest.raises(ModelLoadError, match=r"no detector decoder fits .*logits \[1, 1000\].*--task infer"):
        choose_decoder([spec("logits", 1, 1000)], {})
    with pytest.raises(ModelLoadError, match=r"no detector decoder 'yolo'.*decoders: yolov8, yolov5"):
        choose_decoder([spec("output0", 1, 84, 8400)], {"decoder": "yolo"})
    with pytest.raises(ModelLoadError, match=r"the ssd decoder does not fit"):
        choose_decoder([spec("output0", 1, 84, 8400)], {"decoder": "ssd"})
