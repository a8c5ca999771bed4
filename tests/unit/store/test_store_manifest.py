from __future__ import annotations

from pathlib import Path

import pytest

from lanai.errors import StoreError
from lanai.store import FileRef, Manifest, read_manifest
from lanai.types import BatchingConfig, ImagePreprocess, TensorSpec

DIGEST = "ab" * 32


def full_manifest() -> Manifest:
    return Manifest(
        name="mobilenet",
        version=3,
        task="classify",
        backend="onnx",
        files={
            "model": FileRef(DIGEST, 1234, "model.onnx"),
            "labels": FileRef("cd" * 32, 56, "labels.txt"),
        },
        inputs=(TensorSpec("input", "FP32", (-1, 3, 224, 224)),),
        outputs=(TensorSpec("logits", "FP32", (-1, 1000)), TensorSpec("scalar", "INT64", ())),
        preprocess=ImagePreprocess(resize=240, crop=224, layout="NHWC", dtype="uint8"),
        batching=BatchingConfig(max_batch_size=4, max_queue_delay_us=500, max_queue_size=16),
        backend_options={"intra_op_threads": 2, "providers": ["CPUExecutionProvider"]},
        created="2024-05-01T12:00:00Z",
        provenance={"source": "https://example.org/m.onnx", "optimize": {"quantized": True}},
    )


def test_manifest_round_trips_through_toml() -> None:
    manifest = full_manifest()
    assert Manifest.from_toml(manifest.to_toml()) == manifest


def test_manifest_without_preprocess_round_trips() -> None:
    manifest = Manifest("m", 1, "embed", "onnx", {}, (), ())
    assert Manifest.from_toml(manifest.to_toml()) == manifest


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("this is = = not toml", "not valid"),
        ('name = "m"', "missing key"),
        (full_manifest().to_toml().replace("version = 3", "version = 0"), "version must be 1"),
        (full_manifest().to_toml().replace('name = "mobilenet"', 'name = "../x"'), "not a valid"),
        (full_manifest().to_toml().replace(DIGEST, "../../etc/passwd"), "not a sha256"),
        (full_manifest().to_toml().replace("schema = 1", "schema = 99"), "schema 99"),
    ],
)
def test_invalid_manifest_raises_store_error_naming_the_file(text: str, match: str) -> None:
    with pytest.raises(StoreError, match=match) as info:
        Manifest.from_toml(text, source="/s/models/m/versions/3.toml")
    assert "/s/models/m/versions/3.toml" in info.value.message
    assert info.value.hint


def test_read_manifest_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "1.toml"
    path.write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(StoreError, match=str(path)):
        read_manifest(path)


def test_values_without_a_toml_form_are_refused() -> None:
    manifest = Manifest("m", 1, "classify", "onnx", {}, (), (), provenance={"commit": None})
    with pytest.raises(StoreError, match="cannot be written as TOML") as info:
        manifest.to_toml()
    assert info.value.hint
