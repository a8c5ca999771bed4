"""LiteRT: mediapipe's real BlazeFace model served over the Open Inference Protocol finds the astronaut's face."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from PIL import Image

from lanai.backends import BackendOptions
from lanai.backends.litert import _Tensor
from lanai.bundled import inspector
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.store import Store

from support import ServerThread, mediapipe_model, photo

pytest.importorskip("ai_edge_litert", reason="the litert extra is not installed: pip install -e '.[test]'")

BLAZEFACE = "mediapipe/modules/face_detection/face_detection_short_range.tflite"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    model = mediapipe_model(BLAZEFACE)
    if model is None:
        pytest.skip(f"could not fetch {BLAZEFACE} from the mediapipe wheel on PyPI")
    store = Store(tmp_path_factory.mktemp("litert"))
    # An Edge TPU is asked for first; this machine has none, so the model must still serve, on the CPU.
    store.add(model, name="blazeface", task="infer", backend="litert", inspect=inspector("litert"),
              backend_options={"delegates": ["libedgetpu.so.1"]})  # fmt: skip
    settings = Settings(home=store.root)
    with ServerThread(DataPlane(store, settings), settings) as url:
        yield url


def anchors() -> np.ndarray:
    """BlazeFace (short range): 16×16 cells with 2 anchors, then 8×8 cells with 6, centres in 0..1."""
    rows = []
    for grid, per_cell in ((16, 2), (8, 6)):
        for y in range(grid):
            for x in range(grid):
                rows += [((x + 0.5) / grid, (y + 0.5) / grid)] * per_cell
    return np.array(rows)


def test_blazeface_metadata_and_the_cpu_fallback(server: str) -> None:
    with httpx.Client(base_url=server) as http:
        meta = http.get("/v2/models/blazeface").json()
        health = http.get("/health").json()
    assert meta["platform"] == "tflite"
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [1, 128, 128, 3]}]
    assert [o["name"] for o in meta["outputs"]] == ["regressors", "classificators"]
    provider = next(m["execution_provider"] for m in health["models"] if m["name"] == "blazeface")
    assert provider.startswith("XNNPACK CPU")


def test_blazeface_finds_the_astronauts_face_over_http(server: str) -> None:
    image = Image.fromarray(photo("astronaut")).resize((128, 128), Image.Resampling.BILINEAR)  # 512×512 → 128
    pixels = np.asarray(image, np.float32) / 127.5 - 1.0
    centres = []
    for view in (pixels, pixels[:, ::-1]):  # the photo, and its mirror image
        body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 128, 128, 3],
                            "data": view.ravel().tolist()}]}  # fmt: skip
        with httpx.Client(base_url=server, timeout=30) as http:
            answer = http.post("/v2/models/blazeface/infer", json=body)
        assert answer.status_code == 200, answer.text
        outputs = {o["name"]: np.array(o["data"], np.float32).reshape(o["shape"]) for o in answer.json()["outputs"]}
        assert outputs["regressors"].shape == (1, 896, 16)
        logits = outputs["classificators"][0, :, 0]
        best = int(logits.argmax())
        assert 1 / (1 + np.exp(-logits[best])) > 0.8  # a confident face
        box = outputs["regressors"][0, best]
        centres.append(((box[0] / 128 + anchors()[best, 0]) * 512, (box[1] / 128 + anchors()[best, 1]) * 512))
        assert 60 < box[2] / 128 * 512 < 140  # a face about 95 pixels wide
    (x, y), (mx, my) = centres
    assert 190 < x < 260 and 90 < y < 170  # Eileen Collins' face, left of the picture's centre
    assert abs((512 - mx) - x) < 12 and abs(my - y) < 12  # and the mirror image's face mirrors it


def test_quantised_tensors_are_converted_through_scale_and_zero_point() -> None:
    detail = {"index": 0, "name": "q", "dtype": np.uint8, "quantization": (0.5, 10), "shape": np.array([1, 3]),
              "shape_signature": np.array([-1, 3])}  # fmt: skip
    tensor = _Tensor(detail)
    assert tensor.spec.datatype == "FP32" and tensor.spec.shape == (-1, 3)
    raw = tensor.to_model(np.array([[-5.0, 0.0, 200.0]], np.float32))
    assert raw.dtype == np.uint8 and raw.tolist() == [[0, 10, 255]]  # clipped at the type's range
    np.testing.assert_allclose(tensor.from_model(np.array([[10, 12, 20]], np.uint8)), [[0.0, 1.0, 5.0]])


def test_a_file_that_is_not_tflite_is_refused(tmp_path: pytest.TempPathFactory) -> None:
    from lanai.backends.litert import LiteRTBackend
    from lanai.errors import ModelLoadError

    bogus = tmp_path / "bogus.tflite"  # type: ignore[operator]
    bogus.write_bytes(b"not a flatbuffer")
    with pytest.raises(ModelLoadError, match="LiteRT cannot load bogus.tflite"):
        LiteRTBackend.load(bogus, BackendOptions())
