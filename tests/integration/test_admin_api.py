"""The admin API a console uses (``/v1/admin/...``), over a real socket: listing models and versions,
activating and rolling back on the running server (which answers with the new version at once), a
version that does not load leaving the old one serving, reports, keys that work and stop working at
once, paired devices, the served certificate, and every route refused to a non-admin."""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lanai.bundled import inspector
from lanai.cli import main
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.security.certs import TlsFiles, describe_certificate, init_authority, issue_client
from lanai.security.keys import KeyRing
from lanai.store import Store

from support import TINY_PREPROCESS, ServerThread, make_store

ROUTES = [
    ("GET", "/v1/admin/models"),
    ("GET", "/v1/admin/models/tiny/versions/2/report"),
    ("GET", "/v1/admin/models/tiny/versions/2/report.png"),
    ("POST", "/v1/admin/models/tiny/activate"),
    ("POST", "/v1/admin/models/tiny/rollback"),
    ("GET", "/v1/admin/keys"),
    ("POST", "/v1/admin/keys"),
    ("DELETE", "/v1/admin/keys/desk"),
    ("GET", "/v1/admin/devices"),
    ("DELETE", "/v1/admin/devices/phone"),
    ("GET", "/v1/admin/tls"),
]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32  # enough to be served back byte for byte


def variant(source: Path, target: Path, tag: str) -> Path:
    """The same model with another doc string: the same answers, but a file (a blob) of its own."""
    import onnx

    model = onnx.load(str(source))
    model.doc_string = tag
    onnx.save(model, str(target))
    return target


def add_tiny(store: Store, model: Path, labels: Path, **options: object) -> int:
    manifest = store.add(model, name="tiny", task="classify", labels=labels, preprocess=TINY_PREPROCESS,
                         inspect=inspector("onnx"), **options)  # type: ignore[arg-type]  # fmt: skip
    return manifest.version


def corrupt(store: Store, version: int) -> None:
    """Change bytes of the model file of tiny ``version`` in the store (a failing disk)."""
    path = store.file_path(store.manifest("tiny", version), "model")
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def store(tmp_path: Path, model_files: dict[str, Path]) -> Store:
    """tiny version 1 (active), version 2 (with an optimisation report) and version 3, each its own file."""
    store = make_store(tmp_path / "store", model_files)
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "report.md").write_text("# lanai optimize: tiny\n\nResult: **passed**.\n", encoding="utf-8")
    (folder / "report.json").write_text(json.dumps({"status": "passed", "steps": []}), encoding="utf-8")
    (folder / "report.png").write_bytes(PNG)
    report = {
        "report_md": folder / "report.md",
        "report_json": folder / "report.json",
        "report_png": folder / "report.png",
    }
    v2 = variant(model_files["tiny"], folder / "tiny-v2.onnx", "v2")
    v3 = variant(model_files["tiny"], folder / "tiny-v3.onnx", "v3")
    assert add_tiny(store, v2, model_files["labels"], attachments=report) == 2
    assert add_tiny(store, v3, model_files["labels"]) == 3
    assert store.active("tiny") == 1
    return store


def serve(store: Store, **options: object) -> ServerThread:
    settings = Settings(home=store.root, intra_op_threads=1, grpc=False, **options).with_store_tls()  # type: ignore[arg-type]
    return ServerThread(DataPlane(store, settings), settings)


@pytest.fixture
def box(store: Store) -> Iterator[httpx.Client]:
    """The admin on the box itself (admin_loopback): no key needed."""
    with serve(store) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def served_version(client: httpx.Client, photo: bytes, **headers: str) -> str:
    answer = client.post("/v1/models/tiny/classify", files={"file": ("c.jpg", photo)}, headers=headers)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["version"])


def test_models_are_listed_with_their_versions_newest_first(box: httpx.Client) -> None:
    answer = box.get("/v1/admin/models")
    assert answer.status_code == 200
    models = {m["name"]: m for m in answer.json()["models"]}
    assert {"tiny", "tiny-fixed", "efficientnet-lite0"} <= set(models)
    tiny = models["tiny"]
    assert (tiny["task"], tiny["active"], tiny["serving"], tiny["state"]) == ("classify", "1", "1", "loaded")
    assert [v["version"] for v in tiny["versions"]] == ["3", "2", "1"]
    assert [v["active"] for v in tiny["versions"]] == [False, False, True]
    assert [v["report"] for v in tiny["versions"]] == [False, True, False]
    first = tiny["versions"][-1]
    assert first["backend"] == "onnx" and first["size_bytes"] > 1000 and first["created"].endswith("Z")

    unloaded = box.post("/v2/repository/models/tiny-fixed/unload")
    assert unloaded.status_code == 200
    fixed = next(m for m in box.get("/v1/admin/models").json()["models"] if m["name"] == "tiny-fixed")
    assert (fixed["active"], fixed["serving"], fixed["state"]) == ("1", None, "unloaded")


def test_activate_and_roll_back_on_the_running_server(
    box: httpx.Client, store: Store, photos: dict[str, bytes]
) -> None:
    photo = photos["chelsea"]
    assert served_version(box, photo) == "1"
    answer = box.post("/v1/admin/models/tiny/activate", json={"version": "2"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"name": "tiny", "version": "2", "serving": "2", "previous": "1"}
    assert served_version(box, photo) == "2" and store.active("tiny") == 2

    back = box.post("/v1/admin/models/tiny/rollback")
    assert back.status_code == 200, back.text
    assert back.json()["serving"] == "1" and served_version(box, photo) == "1" and store.active("tiny") == 1

    nothing = box.post("/v1/admin/models/tiny/rollback")  # the undo stack is empty now
    assert nothing.status_code == 400 and "no earlier active version" in nothing.json()["error"]
    assert served_version(box, photo) == "1"


def test_a_version_that_does_not_load_leaves_the_old_one_serving_and_active(
    box: httpx.Client, store: Store, photos: dict[str, bytes]
) -> None:
    photo = photos["chelsea"]
    corrupt(store, 3)
    refused = box.post("/v1/admin/models/tiny/activate", json={"version": 3})
    assert refused.status_code == 400, refused.text
    error = refused.json()
    assert error["kind"] == "ModelLoadError" and "version 1 still serves" in error["error"]
    assert "no longer matches its digest" in error["error"] and "Hint:" in error["error"]
    assert store.active("tiny") == 1 and served_version(box, photo) == "1"
    tiny = next(m for m in box.get("/v1/admin/models").json()["models"] if m["name"] == "tiny")
    assert (tiny["active"], tiny["serving"], tiny["state"]) == ("1", "1", "loaded")

    # a rollback to a version that does not load: the store's active version and its history are restored
    assert box.post("/v1/admin/models/tiny/activate", json={"version": "2"}).status_code == 200
    corrupt(store, 1)
    refused = box.post("/v1/admin/models/tiny/rollback")
    assert refused.status_code == 400 and "version 2 still serves" in refused.json()["error"]
    assert store.active("tiny") == 2 and served_version(box, photo) == "2"
    with pytest.raises(Exception, match="digest"):  # the history still holds 1: rolling back tries it again
        store.verify(store.manifest("tiny", store.rollback("tiny")))


def test_the_command_line_activates_and_rolls_back_through_the_running_server(
    store: Store, photos: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    """`lanai models activate` on a box whose server runs changes the store and the service together, as
    the admin API does; with no server running it changes the store alone."""
    photo = photos["chelsea"]

    def models(*args: str) -> tuple[int, str, str]:
        code = main(["models", "--home", str(store.root), *args])
        out, err = capsys.readouterr()
        return code, out, err

    with serve(store) as url, httpx.Client(base_url=url, timeout=30) as client:
        code, out, _ = models("activate", "tiny", "2")
        assert code == 0 and out.strip() == f"tiny: version 2 is active and serving at {url} (was version 1)"
        assert served_version(client, photo) == "2" and store.active("tiny") == 2
        code, out, _ = models("rollback", "tiny")
        assert code == 0 and out.startswith("tiny: version 1 is active and serving")
        assert served_version(client, photo) == "1"
        corrupt(store, 3)
        code, _, err = models("activate", "tiny", "3")
        assert code == 1 and "version 1 still serves" in err and "digest" in err
        assert served_version(client, photo) == "1" and store.active("tiny") == 1
    code, out, _ = models("activate", "tiny", "2")  # stopped: the store alone
    assert code == 0 and "no server is running on" in out and store.active("tiny") == 2


def test_activate_refuses_what_is_not_there(box: httpx.Client) -> None:
    missing = box.post("/v1/admin/models/tiny/activate", json={"version": "9"})
    assert missing.status_code == 404 and missing.json()["kind"] == "VersionNotFound"
    assert "versions of 'tiny': 1, 2, 3" in missing.json()["error"]
    assert box.post("/v1/admin/models/nope/activate", json={"version": "1"}).status_code == 404
    assert box.post("/v1/admin/models/nope/rollback").status_code == 404
    malformed = box.post("/v1/admin/models/tiny/activate", json={"versions": "2"})
    assert malformed.status_code == 400 and "Hint:" in malformed.json()["error"]
    assert box.post("/v1/admin/models/tiny/activate", content=b"not json").status_code == 400
    assert box.post("/v1/admin/models/tiny/activate", json={"version": "two"}).status_code == 404


def test_a_version_s_report_and_its_chart(box: httpx.Client) -> None:
    answer = box.get("/v1/admin/models/tiny/versions/2/report")
    assert answer.status_code == 200
    assert answer.json() == {
        "model": "tiny",
        "version": "2",
        "markdown": "# lanai optimize: tiny\n\nResult: **passed**.\n",
        "figures": {"status": "passed", "steps": []},
        "chart": True,
    }
    chart = box.get("/v1/admin/models/tiny/versions/2/report.png")
    assert chart.status_code == 200 and chart.headers["content-type"] == "image/png" and chart.content == PNG
    for path in ("/v1/admin/models/tiny/versions/1/report", "/v1/admin/models/tiny/versions/1/report.png"):
        none = box.get(path)
        assert none.status_code == 404 and "has no optimisation report" in none.json()["error"], path
        assert "Hint:" in none.json()["error"]
    assert box.get("/v1/admin/models/tiny/versions/7/report").status_code == 404


def test_keys_made_here_work_at_once_and_revoked_ones_stop(store: Store, photos: dict[str, bytes]) -> None:
    admin = KeyRing(store.root).create("ops", "admin")
    with (
        serve(store, auth="required", admin_loopback=False) as url,
        httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {admin}"}) as client,
    ):
        made = client.post("/v1/admin/keys", json={"name": "desk", "role": "infer", "models": ["tiny"], "rate": 50})
        assert made.status_code == 201, made.text
        body = made.json()
        assert (body["name"], body["role"]) == ("desk", "infer") and body["key"].startswith("lanai_")
        desk = {"Authorization": f"Bearer {body['key']}"}
        assert served_version(client, photos["chelsea"], **desk) == "1"  # the new key, on the running server

        keys = {k["name"]: k for k in client.get("/v1/admin/keys").json()["keys"]}
        assert set(keys) == {"ops", "desk"}
        assert keys["desk"]["models"] == ["tiny"] and keys["desk"]["rate"] == 50.0 and not keys["desk"]["device"]
        assert keys["desk"]["created"].endswith("Z") and keys["ops"]["role"] == "admin"
        assert body["key"] not in client.get("/v1/admin/keys").text and "digest" not in keys["desk"]

        again = client.post("/v1/admin/keys", json={"name": "desk", "role": "admin"})
        assert again.status_code == 409 and "exists" in again.json()["error"] and "Hint:" in again.json()["error"]
        bad = client.post("/v1/admin/keys", json={"name": "Not A Name", "role": "infer"})
        assert bad.status_code == 400 and "not allowed" in bad.json()["error"]
        assert client.post("/v1/admin/keys", json={"name": "x", "role": "root"}).status_code == 400

        revoked = client.delete("/v1/admin/keys/desk")
        assert revoked.status_code == 200 and revoked.json() == {"name": "desk", "revoked": True}
        refused = client.post("/v1/models/tiny/classify", files={"file": ("c.jpg", photos["chelsea"])}, headers=desk)
        assert refused.status_code == 401  # at once, no waiting
        unknown = client.delete("/v1/admin/keys/desk")
        assert unknown.status_code == 404 and "no key named 'desk'" in unknown.json()["error"]


def test_every_admin_route_refuses_an_infer_key_and_no_key(store: Store) -> None:
    infer = KeyRing(store.root).create("desk", "infer")
    # admin_loopback off: the test client on 127.0.0.1 stands for a laptop on the LAN
    with serve(store, admin_loopback=False) as url, httpx.Client(base_url=url, timeout=30) as client:
        for method, path in ROUTES:
            body = {"version": "2"} if path.endswith("activate") else {"name": "x", "role": "admin"}
            kwargs = {"json": body} if method == "POST" else {}
            forbidden = client.request(method, path, headers={"Authorization": f"Bearer {infer}"}, **kwargs)
            assert forbidden.status_code == 403, (method, path, forbidden.text)
            assert client.request(method, path, **kwargs).status_code == 401, (method, path)
    assert store.active("tiny") == 1 and [k.name for k in KeyRing(store.root).list()] == ["desk"]


def test_devices_are_listed_and_revoked(box: httpx.Client, store: Store) -> None:
    ring = KeyRing(store.root)
    fingerprint = ":".join(["AB"] * 32)
    ring.create("phone", "infer", models=["tiny"], device=True, certificate=fingerprint)
    ring.create("desk", "infer")
    devices = box.get("/v1/admin/devices").json()["devices"]
    assert len(devices) == 1
    phone = devices[0]
    assert (phone["name"], phone["role"], phone["fingerprint"]) == ("phone", "infer", fingerprint)
    assert phone["expires"] is None and phone["models"] == ["tiny"]
    assert phone["paired_at"].endswith("Z")
    assert box.delete("/v1/admin/devices/desk").status_code == 404  # a key, not a device
    revoked = box.delete("/v1/admin/devices/phone")
    assert revoked.status_code == 200 and revoked.json() == {"name": "phone", "revoked": True}
    assert ring.certificate_revoked(fingerprint) and box.get("/v1/admin/devices").json() == {"devices": []}
    assert box.delete("/v1/admin/devices/phone").status_code == 404


def test_tls_is_off_without_a_certificate(box: httpx.Client) -> None:
    assert box.get("/v1/admin/tls").json() == {
        "enabled": False,
        "fingerprint_sha256": None,
        "subject": None,
        "not_after": None,
        "days_left": None,
        "mtls": False,
        "issuer": None,
    }


def test_tls_shows_the_served_certificate_and_a_revoked_device_is_refused_under_mtls(store: Store) -> None:
    files = TlsFiles.of(store.root)
    init_authority(files, names=["localhost"], addresses=["127.0.0.1"])
    console = issue_client(files, "console", "admin")
    phone = issue_client(files, "phone", "infer")
    KeyRing(store.root).create("phone", "infer", device=True, certificate=phone.fingerprint)
    context = ssl.create_default_context(cafile=str(files.ca_cert))
    context.load_cert_chain(str(console.cert), str(console.key))
    phone_context = ssl.create_default_context(cafile=str(files.ca_cert))
    phone_context.load_cert_chain(str(phone.cert), str(phone.key))
    with serve(store, mtls=True) as url:
        base = url.replace("http://", "https://")
        with httpx.Client(base_url=base, verify=context, timeout=30) as admin:
            info = admin.get("/v1/admin/tls").json()
            served = describe_certificate(files.server_cert)
            assert info["enabled"] and info["mtls"] and info["fingerprint_sha256"] == served.fingerprint
            assert info["not_after"] == served.not_after.strftime("%Y-%m-%dT%H:%M:%SZ")
            assert 360 <= info["days_left"] <= 397 and "lanai" in info["subject"] and info["issuer"]
            with httpx.Client(base_url=base, verify=phone_context, timeout=30) as device:
                assert device.get("/v2/models/tiny").status_code == 200
                assert admin.delete("/v1/admin/devices/phone").status_code == 200
                refused = device.get("/v2/models/tiny")
                assert refused.status_code == 401 and "revoked" in refused.json()["error"]


def test_every_answer_is_what_the_openapi_document_says(box: httpx.Client, store: Store) -> None:
    from openapi_schema_validator import OAS31Validator

    from lanai.http.openapi import openapi_document

    document = openapi_document()
    KeyRing(store.root).create("phone", "infer", device=True, certificate=":".join(["CD"] * 32))
    calls = [
        ("GET", "/v1/admin/models", "/v1/admin/models", None),
        ("GET", "/v1/admin/models/tiny/versions/2/report", "/v1/admin/models/{model}/versions/{version}/report", None),
        ("GET", "/v1/admin/models/tiny/versions/1/report", "/v1/admin/models/{model}/versions/{version}/report", None),
        ("POST", "/v1/admin/models/tiny/activate", "/v1/admin/models/{model}/activate", {"version": "2"}),
        ("POST", "/v1/admin/models/tiny/activate", "/v1/admin/models/{model}/activate", {"version": []}),
        ("POST", "/v1/admin/models/tiny/rollback", "/v1/admin/models/{model}/rollback", None),
        ("POST", "/v1/admin/models/tiny/rollback", "/v1/admin/models/{model}/rollback", None),
        ("POST", "/v1/admin/keys", "/v1/admin/keys", {"name": "desk", "role": "infer"}),
        ("POST", "/v1/admin/keys", "/v1/admin/keys", {"name": "desk", "role": "infer"}),
        ("GET", "/v1/admin/keys", "/v1/admin/keys", None),
        ("DELETE", "/v1/admin/keys/desk", "/v1/admin/keys/{name}", None),
        ("DELETE", "/v1/admin/keys/desk", "/v1/admin/keys/{name}", None),
        ("GET", "/v1/admin/devices", "/v1/admin/devices", None),
        ("DELETE", "/v1/admin/devices/phone", "/v1/admin/devices/{name}", None),
        ("GET", "/v1/admin/tls", "/v1/admin/tls", None),
    ]
    statuses = []
    for method, url, template, body in calls:
        answer = box.request(method, url, json=body)
        statuses.append(answer.status_code)
        operation = document["paths"][template][method.lower()]
        declared = operation["responses"][str(answer.status_code)]
        while "$ref" in declared:
            declared = document["components"]["responses"][declared["$ref"].rsplit("/", 1)[1]]
        schema = declared["content"]["application/json"]["schema"]
        OAS31Validator({**schema, "components": document["components"]}).validate(answer.json())
    assert statuses == [200, 200, 404, 200, 400, 200, 400, 201, 409, 200, 200, 404, 200, 200, 200]
