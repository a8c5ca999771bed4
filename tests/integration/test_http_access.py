"""Keys and roles on the HTTP door, over a real socket: who may infer, who may administer, model scopes,
rate limits, revocation without a restart, and what /health tells a stranger."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.security.keys import KeyRing
from lanai.store import Store

from support import ServerThread, make_store

CLASSIFY = "/v1/models/{}/classify"


@pytest.fixture
def store(tmp_path: Path, model_files: dict[str, Path]) -> Store:
    return make_store(tmp_path / "store", model_files)


def serve(store: Store, **options: object) -> ServerThread:
    # admin_loopback off: the test client on 127.0.0.1 stands for a laptop on the LAN
    settings = Settings(home=store.root, admin_loopback=False, intra_op_threads=1, grpc=False, **options)  # type: ignore[arg-type]
    return ServerThread(DataPlane(store, settings), settings)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def lan(store: Store) -> Iterator[httpx.Client]:
    with serve(store, metrics_key="scrape-me") as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def test_inference_is_open_but_admin_needs_an_admin_key(
    lan: httpx.Client, store: Store, photos: dict[str, bytes]
) -> None:
    ring = KeyRing(store.root)
    infer, admin = ring.create("desk", "infer"), ring.create("ops", "admin")
    image = {"file": ("c.jpg", photos["chelsea"])}
    assert lan.post(CLASSIFY.format("efficientnet-lite0"), files=image).status_code == 200  # no key: fine

    refused = lan.post("/v2/repository/models/tiny/unload")
    assert refused.status_code == 401 and "needs an admin key" in refused.json()["error"]
    assert refused.headers["www-authenticate"].startswith("Bearer") and refused.json()["kind"] == "Unauthenticated"
    forbidden = lan.post("/v2/repository/models/tiny/unload", headers=bearer(infer))
    assert forbidden.status_code == 403 and "'desk' has role infer" in forbidden.json()["error"]
    assert lan.post("/v2/repository/models/tiny/unload", headers=bearer(admin)).json() == {
        "name": "tiny",
        "unload": True,
    }
    assert lan.post("/v2/repository/models/tiny/load", headers={"X-API-Key": admin}).status_code == 200

    # OpenAI's and Ollama's clients always send some key: where none is needed, a wrong one is no error
    assert lan.post(CLASSIFY.format("tiny"), files=image, headers=bearer("sk-unused")).status_code == 200
    wrong = lan.post("/v2/repository/models/tiny/load", headers=bearer("lanai_nope"))
    assert wrong.status_code == 401 and "not valid" in wrong.json()["error"]


def test_health_tells_a_stranger_only_the_state(lan: httpx.Client, store: Store) -> None:
    admin = KeyRing(store.root).create("ops", "admin")
    assert lan.get("/health").json() == {"status": "healthy"}
    assert lan.get("/health", headers=bearer("lanai_wrong")).json() == {"status": "healthy"}  # never refused
    full = lan.get("/health", headers=bearer(admin)).json()
    assert {m["name"] for m in full["models"]} >= {"tiny", "efficientnet-lite0"} and "runtimes" in full


def test_metrics_need_an_admin_or_the_scrape_key_and_unknown_routes_are_protected(
    lan: httpx.Client, store: Store
) -> None:
    admin = KeyRing(store.root).create("ops", "admin")
    assert lan.get("/metrics").status_code == 401
    scraped = lan.get("/metrics", headers=bearer("scrape-me"))
    assert scraped.status_code == 200 and "lanai_auth_refusals_total" in scraped.text
    assert lan.post("/v2/repository/models/tiny/load", headers=bearer("scrape-me")).status_code == 401  # /metrics only
    assert lan.get("/v9/secret").status_code == 401  # a route nobody listed needs an admin
    assert lan.get("/v9/secret", headers=bearer(admin)).status_code == 404


def test_a_key_limited_to_a_model(lan: httpx.Client, store: Store, photos: dict[str, bytes]) -> None:
    key = KeyRing(store.root).create("tiny-only", "infer", models=["tiny"])
    image = {"file": ("c.jpg", photos["chelsea"])}
    assert lan.post(CLASSIFY.format("tiny"), files=image, headers=bearer(key)).status_code == 200
    other = lan.post(CLASSIFY.format("efficientnet-lite0"), files=image, headers=bearer(key))
    assert other.status_code == 403 and "may not use model 'efficientnet-lite0'" in other.json()["error"]
    assert lan.get("/v2/models/efficientnet-lite0", headers=bearer(key)).status_code == 403
    assert [m["id"] for m in lan.get("/v1/models", headers=bearer(key)).json()["data"]] == ["tiny"]


def test_revoking_a_key_works_at_once_and_a_rate_is_enforced(
    lan: httpx.Client, store: Store, photos: dict[str, bytes]
) -> None:
    ring = KeyRing(store.root)
    key, slow = ring.create("laptop", "admin"), ring.create("kiosk", "infer", rate=1.0)
    assert lan.post("/v2/repository/index", headers=bearer(key)).status_code == 200
    assert lan.post("/v2/repository/models/tiny/load", headers=bearer(key)).status_code == 200
    ring.revoke("laptop")
    deadline = time.monotonic() + 5
    while lan.post("/v2/repository/models/tiny/load", headers=bearer(key)).status_code != 401:
        assert time.monotonic() < deadline, "the revoked key still works"
        time.sleep(0.05)

    codes = [lan.get("/v2/models/tiny", headers=bearer(slow)) for _ in range(3)]
    limited = next(r for r in codes if r.status_code == 429)
    assert limited.headers["retry-after"] == "1" and limited.json()["kind"] == "RateLimited"
    assert codes[0].status_code == 200


def test_required_mode_closes_inference_but_not_health(store: Store, photos: dict[str, bytes]) -> None:
    key = KeyRing(store.root).create("desk", "infer")
    with serve(store, auth="required") as url, httpx.Client(base_url=url, timeout=30) as client:
        image = {"file": ("c.jpg", photos["chelsea"])}
        refused = client.post(CLASSIFY.format("tiny"), files=image)
        assert refused.status_code == 401 and "needs an API key" in refused.json()["error"]
        assert client.post(CLASSIFY.format("tiny"), files=image, headers=bearer(key)).status_code == 200
        assert client.get("/v2/health/ready").status_code == 200 and client.get("/health").status_code == 200


def test_a_key_made_while_the_server_runs_works_at_once_and_sees_only_its_models(
    lan: httpx.Client, store: Store
) -> None:
    key = KeyRing(store.root).create("new-scanner", "infer", models=["tiny"])
    index = lan.post("/v2/repository/index", headers=bearer(key))
    assert index.status_code == 200 and [e["name"] for e in index.json()] == ["tiny"]


def test_a_client_outside_the_served_networks_is_refused_before_its_body(
    store: Store, photos: dict[str, bytes]
) -> None:
    # the test client is on 127.0.0.1: a box that serves only 192.168.7.0/24 refuses it, health included
    with serve(store, allowed_networks=("192.168.7.0/24",)) as url, httpx.Client(base_url=url, timeout=30) as client:
        refused = client.post(CLASSIFY.format("tiny"), files={"file": ("c.jpg", photos["chelsea"])})
        assert refused.status_code == 403 and "127.0.0.1 is not on a network this box serves" in refused.json()["error"]
        assert client.get("/health").status_code == 403
    # behind a trusted proxy on the box, X-Forwarded-For names the client: a stranger is refused, and a LAN
    # client through the proxy is not "this machine" (no admin without a key)
    with serve(store, trusted_proxies=("127.0.0.1/32",)) as url, httpx.Client(base_url=url, timeout=30) as client:
        outside = client.get("/v2/models/tiny", headers={"X-Forwarded-For": "203.0.113.9"})
        assert outside.status_code == 403 and "203.0.113.9" in outside.json()["error"]
        assert client.get("/v2/models/tiny", headers={"X-Forwarded-For": "192.168.1.5"}).status_code == 200
        admin = client.post("/v2/repository/models/tiny/unload", headers={"X-Forwarded-For": "192.168.1.5"})
        assert admin.status_code == 401


def test_a_one_at_a_time_key_gets_its_slot_back_after_each_request(lan: httpx.Client, store: Store) -> None:
    key = KeyRing(store.root).create("serial", "infer", concurrency=1)
    codes = [lan.get("/v2/models/tiny", headers=bearer(key)).status_code for _ in range(5)]
    codes.append(lan.get("/v2/models/nope", headers=bearer(key)).status_code)  # an error frees it too
    codes.append(lan.get("/v2/models/tiny", headers=bearer(key)).status_code)
    assert codes == [200] * 5 + [404, 200]


def test_a_proxy_on_the_box_that_is_not_trusted_does_not_make_its_clients_admins(store: Store) -> None:
    settings = Settings(home=store.root, intra_op_threads=1, grpc=False)  # admin_loopback on, no trusted proxies
    with ServerThread(DataPlane(store, settings), settings) as url, httpx.Client(base_url=url, timeout=30) as client:
        proxied = client.post("/v2/repository/models/tiny/unload", headers={"X-Forwarded-For": "192.168.1.5"})
        assert proxied.status_code == 401
        assert client.get("/v2/models/tiny", headers={"X-Forwarded-For": "192.168.1.5"}).status_code == 200
        assert client.post("/v2/repository/models/tiny/unload").status_code == 200  # this machine itself


def test_a_key_may_not_load_deepstacks_detector_it_may_not_use(tmp_path: Path, store: Store) -> None:
    """DeepStack's detector is a setting, not in the request: a key limited to other models is refused
    before the detector, which loads on demand, is loaded for it."""
    from assets_vision import write_emitter, yolov8_raw

    from lanai.bundled import inspector
    from lanai.config import load_settings

    labels = tmp_path / "labels.txt"
    labels.write_text("person\nbicycle\ncup\n", encoding="utf-8")
    store.add(write_emitter(tmp_path / "yolo.onnx", {"output0": yolov8_raw([(320, 320, 200, 100, 2, 0.9)])}),
              name="yolo", task="detect", labels=labels, inspect=inspector("onnx"), activate=True)  # fmt: skip
    (store.root / "lanai.toml").write_text('[models.yolo]\nload = "demand"\n', encoding="utf-8")
    environ = {"LANAI_HOME": str(store.root), "LANAI_GRPC": "false", "LANAI_DISCOVERY": "false",
               "LANAI_ADMIN_LOOPBACK": "false", "LANAI_DEEPSTACK_DETECTION_MODEL": "yolo"}  # fmt: skip
    settings = load_settings(environ=environ)
    plane = DataPlane(store, settings)
    ring = KeyRing(store.root)
    narrow, wide = ring.create("tiny-only", "infer", models=["tiny"]), ring.create("desk", "infer")
    image = {"image": ("c.jpg", b"\xff\xd8 not read")}
    with ServerThread(plane, settings) as url, httpx.Client(base_url=url, timeout=30) as client:
        refused = client.post("/v1/vision/detection", files=image, headers=bearer(narrow))
        assert refused.status_code == 403 and "may not use model 'yolo'" in refused.json()["error"]
        assert "yolo" not in plane.models
        answered = client.post("/v1/vision/detection", files=image, headers=bearer(wide))
        assert answered.status_code == 400 and "yolo" in plane.models  # loaded for it; the image is bad
