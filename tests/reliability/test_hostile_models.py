"""Malformed and hostile model files through ``lanai models add`` and ``lanai pull``: cut ONNX, TFLite and
GGUF files, files of another kind under a model's name, headers that declare absurd sizes, and ONNX
external data that points outside the model's folder. Each is one line of ``error: … Hint: …`` and exit
status 1, never a traceback, and the store gains no version and keeps nothing in staging."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from lanai.cli import main as lanai_main
from lanai.store import Store

from support import mediapipe_model, write_tiny_classifier, write_tiny_gguf

BLAZEFACE = "mediapipe/modules/face_detection/face_detection_short_range.tflite"
PNG = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x08\0\0\0\x08\x08\x02\0\0\0" + b"\0" * 64


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("good-models")
    return {
        "onnx": write_tiny_classifier(root / "tiny.onnx").read_bytes(),
        "gguf": write_tiny_gguf(root / "tiny.gguf").read_bytes(),
    }


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, sources: dict[str, bytes]) -> Path:
    """A store holding version 1 of ``victim``: a bad file added as ``victim`` would be version 2."""
    home = tmp_path_factory.mktemp("hostile-store")
    model = home.parent / "victim.onnx"
    model.write_bytes(sources["onnx"])
    assert run_add(home, model, "classify")[0] == 0
    return home


def tree(home: Path) -> dict[str, int]:
    """Every file and folder of the store (blobs apart), with its size."""
    return {
        str(p.relative_to(home)): p.stat().st_size if p.is_file() else -1
        for p in sorted(home.rglob("*"))
        if "blobs" not in p.relative_to(home).parts
    }


def blobs(home: Path) -> set[str]:
    return {p.name for p in (home / "blobs" / "sha256").iterdir()}


def run_add(home: Path, model: Path, task: str) -> tuple[int, str]:
    """``lanai models add`` in this process: its exit status and what it wrote to stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = lanai_main(["models", "--home", str(home), "add", str(model), "--name", "victim", "--task", task])
    return code, err.getvalue()


def one_error_line(stderr: str, *words: str) -> str:
    """The one ``error: … Hint: …`` line; no traceback anywhere."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), stderr
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and "Hint:" in errors[0], stderr  # message and hint on one line
    for word in words:
        assert word.lower() in errors[0].lower(), errors[0]
    return errors[0]


@contextlib.contextmanager
def unchanged(home: Path) -> Iterator[None]:
    """No new version, nothing left in staging, nothing else in the store changed. A refused file's bytes
    may stay as a blob no manifest references (the importer's design, until gc): checked to be such."""
    before, stored = tree(home), blobs(home)
    yield
    assert tree(home) == before
    assert Store(home).versions("victim") == [1] and list((home / "staging").iterdir()) == []
    orphans = blobs(home) - stored
    assert len(orphans) <= 1, orphans
    if orphans:
        assert Store(home).gc() == len(orphans)  # unreferenced: gc takes it, and the store is as before
        assert blobs(home) == stored and tree(home) == before


# --- the cases -------------------------------------------------------------------------------------


def absurd_onnx(good: bytes) -> bytes:
    """The tiny classifier, its weight declaring [2**40] elements and holding its 960 floats."""
    import onnx

    model = onnx.load_from_string(good)
    weight = model.graph.initializer[0]
    del weight.dims[:]
    weight.dims.extend([2**40])
    return model.SerializeToString()


def external_onnx(good: bytes, location: str) -> bytes:
    """The tiny classifier with its weight in an external file at ``location``."""
    import onnx
    from onnx import TensorProto

    model = onnx.load_from_string(good)
    weight = model.graph.initializer[0]
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "3840")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    return model.SerializeToString()


def _gguf_string(text: str) -> bytes:
    return struct.pack("<Q", len(text)) + text.encode()


def gguf_header(tensors: int, kvs: int, body: bytes = b"") -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, tensors, kvs) + body


def gguf_absurd_tensor() -> bytes:
    """A well-formed GGUF header with one tensor of 2**40 × 2**20 floats, and 64 bytes of data."""
    kv = _gguf_string("general.architecture") + struct.pack("<I", 8) + _gguf_string("llama")
    info = _gguf_string("token_embd.weight") + struct.pack("<IQQIQ", 2, 2**40, 2**20, 0, 0)
    head = gguf_header(1, 1, kv + info)
    return head + b"\0" * (-len(head) % 32) + b"\0" * 64


ONNX: dict[str, Callable[[bytes], bytes]] = {
    "cut at 16 bytes": lambda b: b[:16],
    "cut at 10%": lambda b: b[: len(b) // 10],
    "cut at 50%": lambda b: b[: len(b) // 2],
    "cut at 90%": lambda b: b[: len(b) * 9 // 10],
    "one byte short": lambda b: b[:-1],
    "empty": lambda b: b"",
    "a PNG": lambda b: PNG,
    "random bytes": lambda b: np.random.default_rng(1).bytes(4096),
    "a [2**40] initializer": absurd_onnx,
}
GGUF: dict[str, Callable[[bytes], bytes]] = {
    "cut at 50%": lambda b: b[: len(b) // 2],
    "cut in the header": lambda b: b[:40],
    "one byte short": lambda b: b[:-1],
    "a PNG": lambda b: PNG,
    "GGUF version 99": lambda b: b[:4] + struct.pack("<I", 99) + b[8:],
    "2**60 tensors": lambda b: gguf_header(2**60, 0),
    "2**60 metadata keys": lambda b: gguf_header(0, 2**60),
    "a 2**60-byte key": lambda b: gguf_header(0, 1, struct.pack("<Q", 2**60) + b"x" * 64),
    "a 2**60-element tensor": lambda b: gguf_absurd_tensor(),
}


@pytest.mark.parametrize("case", ONNX)
def test_malformed_onnx_files(home: Path, sources: dict[str, bytes], tmp_path: Path, case: str) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(ONNX[case](sources["onnx"]))
    with unchanged(home):
        code, stderr = run_add(home, model, "classify")
        assert code == 1
        one_error_line(stderr, "cannot load", "onnx")


@pytest.mark.parametrize("case", GGUF)
def test_malformed_gguf_files(home: Path, sources: dict[str, bytes], tmp_path: Path, case: str) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(GGUF[case](sources["gguf"]))
    with unchanged(home):
        code, stderr = run_add(home, model, "chat")
        assert code == 1
        one_error_line(stderr, "llama.cpp cannot load", "GGUF")


@pytest.mark.parametrize("hparams", [{"kv_heads": 3}, {"experts": (1, 2)}], ids=["kv heads", "experts"])
def test_gguf_files_that_crash_llama_cpp(home: Path, tmp_path: Path, hparams: dict[str, object]) -> None:
    """Well-formed GGUFs whose hyperparameters make llama.cpp abort (a failed GGML_ASSERT) rather than
    refuse: the import's trial load runs in a child process, so ``models add`` (in this very process)
    reports the crash in one line instead of dying of it."""
    model = write_tiny_gguf(tmp_path / "model.gguf", **hparams)  # type: ignore[arg-type]
    with unchanged(home):
        code, stderr = run_add(home, model, "chat")
        assert code == 1
        one_error_line(stderr, "llamacpp runtime crashed", "SIGABRT", "GGML_ASSERT")


def test_malformed_tflite_files(home: Path, tmp_path: Path) -> None:
    cases = {"a PNG": PNG, "a bare header": b"\x1c\0\0\0TFL3" + b"\0" * 48, "empty": b""}
    real = mediapipe_model(BLAZEFACE)
    if real is not None:  # a real model, cut
        data = real.read_bytes()
        cases.update({f"cut at {n}%": data[: len(data) * n // 100] for n in (1, 30, 90)})
    for case, content in cases.items():
        model = tmp_path / "model.tflite"
        model.write_bytes(content)
        with unchanged(home):
            code, stderr = run_add(home, model, "detect")
            assert code == 1, case
            one_error_line(stderr, "tflite")
    assert real is not None, "the real .tflite could not be had: only the made-up files were tried"


@pytest.mark.parametrize("location", ["../../etc/passwd", "/etc/passwd", "sub/../../etc/passwd", "C:/Windows/x"])
def test_external_data_outside_the_store_is_refused_unread(
    home: Path, sources: dict[str, bytes], tmp_path: Path, location: str
) -> None:
    model = tmp_path / "deep" / "er" / "model.onnx"
    model.parent.mkdir(parents=True)
    model.write_bytes(external_onnx(sources["onnx"], location))
    with unchanged(home):
        code, stderr = run_add(home, model, "classify")
        assert code == 1
        one_error_line(stderr, f"external data at {location!r}", "outside its own folder")


def test_external_data_through_a_link_is_refused_unread_by_a_real_process(
    home: Path, sources: dict[str, bytes], tmp_path: Path
) -> None:
    """The location is a plain name, but the file there links to a FIFO outside the model's folder: lanai
    must refuse it without opening it (opening a FIFO for reading blocks until a writer comes: it would
    hang), and the real ``python -m lanai.cli`` process ends with one error line and no traceback."""
    outside = tmp_path / "outside"
    outside.mkdir()
    fifo = outside / "secret"
    os.mkfifo(fifo)
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").symlink_to(fifo)
    model = folder / "model.onnx"
    model.write_bytes(external_onnx(sources["onnx"], "weights.bin"))
    command = [sys.executable, "-m", "lanai.cli", "models", "--home", str(home), "add", str(model),
               "--name", "victim", "--task", "classify"]  # fmt: skip
    with unchanged(home):
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 1, done
        one_error_line(done.stderr, "weights.bin", "not a regular file")
    # the same with an absolute location naming the FIFO itself
    model.write_bytes(external_onnx(sources["onnx"], str(fifo)))
    with unchanged(home):
        code, stderr = run_add(home, model, "classify")
        assert code == 1
        one_error_line(stderr, "outside its own folder")
    # a link to a regular file outside: refused, and its bytes never become a blob
    secret = outside / "passwords"
    secret.write_bytes(b"hunter2\n" * 480)
    (folder / "weights.bin").unlink()
    (folder / "weights.bin").symlink_to(secret)
    model.write_bytes(external_onnx(sources["onnx"], "weights.bin"))
    with unchanged(home):
        code, stderr = run_add(home, model, "classify")
        assert code == 1
        one_error_line(stderr, "'weights.bin' leads outside its folder", "copy the data file beside the model")
        assert hashlib.sha256(secret.read_bytes()).hexdigest() not in blobs(home)


# --- through the registry --------------------------------------------------------------------------


def test_a_garbage_model_layer_through_lanai_pull(tmp_path: Path, sources: dict[str, bytes]) -> None:
    """An artifact whose model layer (and its lanai.toml, consistently) was replaced by a cut ONNX file:
    every digest checks out, the model does not load; lanai pull says so and the store is as it was."""
    pytest.importorskip("model_signing", reason="the fleet extra is not installed: pip install -e '.[test]'")
    from dataclasses import replace

    from oci_registry import start_registry, stop_registry

    from lanai.fleet.artifact import push
    from lanai.fleet.reference import parse_reference
    from lanai.fleet.registry import RegistryClient, sha256_digest
    from lanai.store.manifest import FileRef, Manifest

    source = Store(tmp_path / "source")
    (tmp_path / "tiny.onnx").write_bytes(sources["onnx"])
    assert run_add(source.root, tmp_path / "tiny.onnx", "classify")[0] == 0
    box = tmp_path / "box"
    assert run_add(box, tmp_path / "tiny.onnx", "classify")[0] == 0  # the box already runs version 1
    registry, proc = start_registry(tmp_path / "registry")
    try:
        good = parse_reference(f"{registry.host}/models/victim:good")
        with RegistryClient(registry.host, plain_http=True) as client:
            push(source, "victim", None, good, client)
            document = client.get_manifest(good, ("application/vnd.oci.image.manifest.v1+json",)).json()
            layers = {layer["annotations"]["org.opencontainers.image.title"]: layer for layer in document["layers"]}
            toml_layer, model_layer = layers["lanai.toml"], layers["model/tiny.onnx"]
            buffer = io.BytesIO()
            client.fetch_blob(good.repository, toml_layer["digest"], toml_layer["size"], buffer)
            manifest = Manifest.from_toml(buffer.getvalue().decode())
            garbage = sources["onnx"][: len(sources["onnx"]) // 2]
            digest = sha256_digest(garbage)
            files = {**manifest.files, "model": FileRef(digest.split(":")[1], len(garbage), "tiny.onnx")}
            toml = replace(manifest, files=files).to_toml().encode()
            for blob in (garbage, toml):
                client.push_blob(good.repository, sha256_digest(blob), len(blob), blob)
            model_layer.update(digest=digest, size=len(garbage))
            toml_layer.update(digest=sha256_digest(toml), size=len(toml))
            client.put_manifest(good.repository, "bad", json.dumps(document).encode(), document["mediaType"])
        before, stored = tree(box), blobs(box)
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = lanai_main(["pull", f"{registry.host}/models/victim:bad", "--home", str(box), "--plain-http"])
        assert code == 1
        one_error_line(err.getvalue(), "cannot load")
        assert tree(box) == before and Store(box).versions("victim") == [1]
        assert list((box / "staging").iterdir()) == []
        orphans = blobs(box) - stored  # the cut model's bytes, referenced by no manifest: gc takes them
        assert len(orphans) <= 1 and Store(box).gc() == len(orphans) and blobs(box) == stored
    finally:
        stop_registry(proc)
