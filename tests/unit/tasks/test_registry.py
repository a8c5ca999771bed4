"""The task registry: what every task declares, and that a new task is one module plus one line."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np
import pytest

from lanai.bundled import inspector
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.errors import BadInput
from lanai.http.app import create_app
from lanai.http.openapi import openapi_document
from lanai.store import Store
from lanai.tasks import TASKS, get_task
from lanai.tasks.base import parse_params
from lanai.tasks.classify import ClassifyParams

from . import image_vector
from support import TINY_PREPROCESS, encode, tiny_logits


def test_every_task_declares_what_it_is() -> None:
    for name, task in TASKS.items():
        assert task.name == name and task.kind in ("tensor", "language") and task.backends
        if task.routed:
            assert task.result is not None and hasattr(task.result, "from_dict")
    assert [t.name for t in TASKS.values() if t.routed][:1] == ["classify"] and "detect" in TASKS
    with pytest.raises(BadInput, match="there is no task 'nope'.*classify"):
        get_task("nope")


def test_parameters_are_checked_from_their_own_field_metadata() -> None:
    assert parse_params(ClassifyParams, {"top_k": "3"}, task="classify") == ClassifyParams(3)
    for bad in ("0", "1001", "abc", "2.5"):
        with pytest.raises(BadInput, match=r"top_k must be a whole number from 1 to 1000.*Hint: use e.g. top_k=5"):
            parse_params(ClassifyParams, {"top_k": bad}, task="classify")
    with pytest.raises(BadInput, match="no parameter 'topk'.*its parameters: top_k"):
        parse_params(ClassifyParams, {"topk": "3"}, task="classify")


def test_a_new_task_is_one_module_plus_one_registry_line(
    tmp_path: Path, model_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(TASKS, "image-vector", image_vector.TASK)  # the one line

    store = Store(tmp_path)
    store.add(model_files["tiny"], name="tiny", task="image-vector", preprocess=TINY_PREPROCESS,
              inspect=inspector("onnx", "image-vector"))  # fmt: skip
    plane = DataPlane(store, Settings(home=tmp_path, intra_op_threads=1))
    pixels = np.full((8, 8, 3), 51, np.uint8)

    async def main() -> httpx.Response:
        await plane.start()
        try:
            transport = httpx.ASGITransport(app=create_app(plane))
            async with httpx.AsyncClient(transport=transport, base_url="http://lanai.test") as client:
                return await client.post("/v1/models/tiny/image-vector?normalize=true",
                                         files={"file": ("x.png", encode(pixels, "PNG"))})  # fmt: skip
        finally:
            await plane.shutdown()

    response = asyncio.run(main())
    assert response.status_code == 200, response.text
    answer = image_vector.ImageVector.from_dict(response.json())
    expected = tiny_logits(np.full((1, 3, 8, 8), 0.2, np.float32))[0]
    assert np.allclose(answer.vector, expected / np.linalg.norm(expected), atol=1e-4)
    document = openapi_document()
    operation = document["paths"]["/v1/models/{model}/image-vector"]["post"]
    assert operation["operationId"] == "ImageVector" and operation["parameters"][-1]["name"] == "normalize"
    assert "ImageVector" in document["components"]["schemas"]
