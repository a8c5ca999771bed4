"""A box that follows a channel in a real registry (docker-registry on loopback), served over HTTP while
clients keep calling it: a new version activates with no failed request, one whose golden inputs answer
differently here is refused, one that is slower in service is rolled back within its watch, the rollout's
rings hold a box back, and `lanai models history` tells the story."""

from __future__ import annotations

import argparse
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from oci_registry import Registry, start_registry, stop_registry

from lanai.bundled import inspector
from lanai.cli import build_parser
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.fleet.artifact import Rollout, push
from lanai.fleet.follow import FleetState, Follow, Follower, history, write_follow_entries
from lanai.fleet.golden import made_here
from lanai.models_cli import run_models_command
from lanai.store import Store
from lanai.types import BatchingConfig

from support import TINY_PREPROCESS, ServerThread


def write_variant(path: Path, *, seed: int = 0, slow: int = 0) -> Path:
    """The tiny classifier with the weights of ``seed``; with ``slow`` layers of 1024 × 1024 work that
    add nothing to its answer (a version that answers right, but slowly)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((3 * 8 * 8, 5)).astype(np.float32)
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["raw"]),
    ]
    init = [numpy_helper.from_array(weights, "W")]
    if slow:
        init += [numpy_helper.from_array(rng.standard_normal((192, 1024)).astype(np.float32) * 0.05, "H0"),
                 numpy_helper.from_array(np.zeros((1,), np.float32), "zero")]  # fmt: skip
        nodes.append(helper.make_node("MatMul", ["flat", "H0"], ["h0"]))
        init.append(numpy_helper.from_array(rng.standard_normal((1024, 1024)).astype(np.float32) * 0.03, "H"))
        for k in range(slow):  # one weight shared by every layer: slow to run (~1 G MACs a row), small to ship
            nodes += [helper.make_node("MatMul", [f"h{k}", "H"], [f"m{k}"]),
                      helper.make_node("Tanh", [f"m{k}"], [f"h{k + 1}"])]  # fmt: skip
        nodes += [helper.make_node("ReduceSum", [f"h{slow}"], ["s"], keepdims=1),
                  helper.make_node("Mul", ["s", "zero"], ["nothing"]),
                  helper.make_node("Add", ["raw", "nothing"], ["logits"])]  # fmt: skip
    else:
        nodes.append(helper.make_node("Identity", ["raw"], ["logits"]))
    graph = helper.make_graph(nodes, "variant", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 5])], init)  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


class Source:
    """The ML team's machine: a store where versions are added, and pushes to the channel."""

    def __init__(self, folder: Path, registry: Registry, photo: Path, labels: Path) -> None:
        self.store = Store(folder / "store")
        self.folder, self.registry, self.photo, self.labels = folder, registry, photo, labels
        self.settings = Settings(home=self.store.root)

    def add(self, model: Path) -> int:
        return self.store.add(model, name="tiny", task="classify", labels=self.labels, preprocess=TINY_PREPROCESS,
                              batching=BatchingConfig(max_batch_size=4, max_queue_delay_us=500),
                              inspect=inspector("onnx", "classify"), activate=True).version  # fmt: skip

    def golden(self, version: int) -> bytes:
        return made_here(self.store, self.settings, "tiny", version, [self.photo])

    def push(self, version: int, golden: bytes | None = None, rollout: Rollout | None = None) -> str:
        from lanai.fleet.reference import parse_reference
        from lanai.fleet.registry import RegistryClient

        ref = parse_reference(f"{self.registry.host}/models/tiny:stable")
        with RegistryClient(self.registry.host, plain_http=True) as client:
            return push(self.store, "tiny", version, ref, client, golden=golden or self.golden(version),
                        rollout=rollout).digest  # fmt: skip


@pytest.fixture
def channel(tmp_path: Path, photos: dict[str, bytes], model_files: dict[str, Path]) -> Iterator[Source]:
    registry, proc = start_registry(tmp_path / "registry")
    photo = tmp_path / "chelsea.jpg"
    photo.write_bytes(photos["chelsea"])
    try:
        yield Source(tmp_path / "source", registry, photo, model_files["labels"])
    finally:
        stop_registry(proc)


def version_of(url: str) -> str | None:
    answer = httpx.get(f"{url}/v2/models/tiny", timeout=5)
    return answer.json()["versions"][0] if answer.status_code == 200 else None


def wait(condition: Callable[[], object], limit: float = 20.0, why: Callable[[], object] | None = None) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("timed out" + ("" if why is None else f": {why()}"))


class Load:
    """``clients`` callers classifying the photo without a pause; every status kept."""

    def __init__(self, url: str, photo: bytes, clients: int = 16) -> None:
        self.url, self.photo, self.clients = url, photo, clients
        self.statuses: Counter[int] = Counter()
        self.versions: Counter[str] = Counter()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(clients)
        self._futures = [self._pool.submit(self._call) for _ in range(clients)]

    def _call(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self._stop.is_set():
                answer = http.post("/v1/models/tiny/classify", files={"file": ("p.jpg", self.photo)})
                self.statuses[answer.status_code] += 1
                if answer.status_code == 200:
                    self.versions[answer.json()["version"]] += 1

    def stop(self) -> None:
        self._stop.set()
        for future in self._futures:
            future.result()
        self._pool.shutdown()


def test_a_followed_channel_updates_refuses_and_rolls_back_under_load(
    channel: Source, tmp_path: Path, photos: dict[str, bytes], model_files: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    home = tmp_path / "box"
    write_follow_entries(home, [Follow("tiny", f"{channel.registry.host}/models/tiny:stable", plain_http=True)])
    settings = Settings(home=home, follow_interval_s=0.2, watch_s=6, grpc=False, discovery=False)
    v1 = channel.add(write_variant(tmp_path / "v1.onnx"))
    first = channel.push(v1)
    plane = DataPlane(Store(home), settings)
    with ServerThread(plane, settings) as url:
        wait(lambda: version_of(url) == "1")  # an empty box took the channel's first version
        load = Load(url, photos["chelsea"])
        try:
            time.sleep(1.0)
            v2 = channel.add(write_variant(tmp_path / "v2.onnx"))  # the same answers, a new version
            second = channel.push(v2)
            wait(lambda: version_of(url) == "2")
            time.sleep(1.0)
            during = sum(load.statuses.values())
            assert set(load.statuses) == {200}, load.statuses  # not one request failed across the swap
            assert load.versions["1"] > 0 and load.versions["2"] > 0 and during > 100

            wait(lambda: any(e["event"] == "kept" for e in history(home, "tiny")), 15)  # watched: kept
            # a version whose answers differ here from what was published (a broken conversion)
            v3 = channel.add(write_variant(tmp_path / "v3.onnx", seed=7))
            third = channel.push(v3, golden=channel.golden(v2))
            wait(lambda: third in FleetState(home, "tiny").refused)
            assert "golden inputs" in FleetState(home, "tiny").refused[third] and version_of(url) == "2"

            # right answers, but far slower in service: activated, watched, rolled back
            v4 = channel.add(write_variant(tmp_path / "v4.onnx", slow=1200))
            fourth = channel.push(v4)
            wait(lambda: load.versions["4"] > 0, 20)
            wait(lambda: fourth in FleetState(home, "tiny").refused, 20, lambda: history(home, "tiny")[-1])
            assert "p95 latency" in FleetState(home, "tiny").refused[fourth]
            wait(lambda: version_of(url) == "2")
            assert Store(home).active("tiny") == 2
            time.sleep(0.5)
        finally:
            load.stop()
        assert set(load.statuses) == {200}, load.statuses  # the refusal and the rollback cost no request either
        metrics = httpx.get(f"{url}/metrics").text
        assert 'lanai_rollbacks_total{model="tiny"} 1.0' in metrics
        assert 'lanai_update_state{model="tiny",state="rolled_back"} 1.0' in metrics
    events = [(e["event"], e["digest"]) for e in history(home, "tiny")]
    for step in [("activated", first), ("activated", second), ("kept", second), ("refused", third),
                 ("activated", fourth), ("rolled_back", fourth)]:  # fmt: skip
        assert step in events, (step, events)
    args: argparse.Namespace = build_parser().parse_args(["models", "--home", str(home), "history", "tiny"])
    assert run_models_command(args) == 0
    shown = capsys.readouterr().out
    assert "tiny: version 2 is active" in shown and "rolled_back version 4" in shown and "refused version 3" in shown


def test_rings_hold_a_box_back_until_its_turn(channel: Source, tmp_path: Path) -> None:
    """Canary boxes take a version at once; the others after the soak. Checked with the follower's own
    steps, on a plane that is not serving (no time is spent waiting for real soak periods)."""
    import asyncio

    v1 = channel.add(write_variant(tmp_path / "v1.onnx"))
    published = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    digest = channel.push(v1, rollout=Rollout(("canary", "default"), 3600.0, published))
    entry = Follow("tiny", f"{channel.registry.host}/models/tiny:stable", plain_http=True)

    async def look(ring: str) -> tuple[str, str | None]:
        home = tmp_path / ring
        settings = Settings(home=home, ring=ring)
        plane = DataPlane(Store(home), settings)
        await plane.start()
        try:
            return await Follower(plane, [entry], settings).check(entry), FleetState(home, "tiny").digest
        finally:
            await plane.shutdown()

    assert asyncio.run(look("canary")) == ("activated", digest)
    assert asyncio.run(look("default")) == ("waiting", None)  # an hour later, its turn
    assert asyncio.run(look("lab")) == ("waiting", None)  # a ring not listed goes with the last


def test_an_update_waits_for_the_pipelines_in_flight(channel: Source, tmp_path: Path) -> None:
    """A pipeline's steps must all run on one version: the swap waits while one runs."""
    import asyncio

    digest = channel.push(channel.add(write_variant(tmp_path / "v1.onnx")))
    entry = Follow("tiny", f"{channel.registry.host}/models/tiny:stable", plain_http=True)
    home = tmp_path / "box"

    async def run() -> None:
        settings = Settings(home=home)
        plane = DataPlane(Store(home), settings)
        await plane.start()
        try:
            plane.pipelines_running = 1
            look = asyncio.create_task(Follower(plane, [entry], settings).check(entry))
            await asyncio.sleep(1.5)  # pulled and verified by now, but held
            assert not look.done() and "tiny" not in plane.models
            plane.pipelines_running = 0
            assert await asyncio.wait_for(look, 10) == "activated" and plane.models["tiny"].version == "1"
        finally:
            await plane.shutdown()

    asyncio.run(run())
    assert FleetState(home, "tiny").digest == digest


def test_a_canary_rollback_reaches_the_next_ring_through_the_registry(channel: Source, tmp_path: Path) -> None:
    import asyncio

    published = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    digest = channel.push(channel.add(write_variant(tmp_path / "v1.onnx")),
                          rollout=Rollout(("canary", "default"), 0.0, published))  # fmt: skip
    entry = Follow("tiny", f"{channel.registry.host}/models/tiny:stable", plain_http=True)
    settings = Settings(home=tmp_path / "canary", ring="canary")
    Follower(None, [entry], settings).report_rollback(entry, digest, "p95 latency 161.1 ms against 34.9 ms before")
    home = tmp_path / "default"

    async def look() -> str:
        settings = Settings(home=home, ring="default")
        plane = DataPlane(Store(home), settings)
        await plane.start()
        try:
            return await Follower(plane, [entry], settings).check(entry)
        finally:
            await plane.shutdown()

    assert asyncio.run(look()) == "refused"
    reason = FleetState(home, "tiny").refused[digest]
    assert reason.startswith("rolled back on ") and "(ring canary): p95 latency 161.1 ms" in reason
    assert not Store(home).list()  # never pulled
    tag = httpx.get(f"http://{channel.registry.host}/v2/models/tiny/tags/list").json()["tags"]
    assert digest.replace(":", "-") + ".rollback" in tag  # what the publisher sees in the registry
