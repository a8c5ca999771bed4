from __future__ import annotations

import re
from pathlib import Path

import pytest
from store_helpers import InspectFn, MakeLabels, MakeModel, Specs, snapshot

from lanai.errors import ModelLoadError, NotReady, StoreError, VersionNotFound
from lanai.store import ModelSummary, Store
from lanai.types import BatchingConfig, ImagePreprocess, TensorSpec


def test_add_then_list_and_manifest_round_trip(
    store: Store, make_model: MakeModel, make_labels: MakeLabels, inspect: InspectFn
) -> None:
    labels = make_labels("cat\ndog\nbird\n")
    added = store.add(
        make_model(3),
        name="pets",
        task="classify",
        inspect=inspect,
        labels=labels,
        preprocess=ImagePreprocess(resize=160, crop=128),
        batching=BatchingConfig(max_batch_size=2),
        backend_options={"threads": 1},
        provenance={"source": "unit test"},
    )
    assert added.version == 1
    assert added.inputs == (TensorSpec("input", "FP32", (-1, 3, 8, 8)),)
    assert added.outputs == (TensorSpec("logits", "FP32", (-1, 3)),)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", added.created)
    assert store.manifest("pets") == added == store.manifest("pets", 1)
    assert store.list() == [ModelSummary("pets", 1, (1,), "classify")]
    assert store.versions("pets") == [1]
    assert store.active("pets") == 1
    assert store.file_path(added, "labels").read_text() == "cat\ndog\nbird\n"
    assert store.file_path(added, "model").read_text().startswith("fake-model 3")
    assert added.files["model"].filename == "model.onnx"
    assert added.files["labels"].filename == labels.name


def test_list_is_sorted_and_skips_stray_entries(store: Store, make_model: MakeModel, inspect: InspectFn) -> None:
    for name in ("zeta", "alpha", "mid"):
        store.add(make_model(), name=name, task="classify", inspect=inspect)
    (store.root / "models" / "Not A Model").mkdir()
    (store.root / "models" / "empty").mkdir()
    (store.root / "models" / "alpha" / "versions" / "tmp-123").write_text("junk")
    (store.root / "models" / "alpha" / "versions" / "9.toml.partial").write_text("junk")
    assert [s.name for s in store.list()] == ["alpha", "mid", "zeta"]
    assert store.versions("alpha") == [1]


def test_empty_store_lists_nothing_and_creates_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "nowhere")
    assert store.list() == []
    assert store.gc() == 0
    assert not store.root.exists()
    assert repr(store) == f"Store({str(tmp_path / 'nowhere')!r})"


def test_next_add_is_the_next_version_and_activates_only_when_asked(
    store: Store, make_model: MakeModel, inspect: InspectFn
) -> None:
    store.add(make_model(), name="m", task="classify", inspect=inspect)
    second = store.add(make_model(salt="v2"), name="m", task="classify", inspect=inspect)
    assert (second.version, store.active("m")) == (2, 1)
    third = store.add(make_model(salt="v3"), name="m", task="classify", inspect=inspect, activate=True)
    assert (third.version, store.active("m")) == (3, 3)


def test_identical_files_are_stored_once(
    store: Store, make_model: MakeModel, make_labels: MakeLabels, inspect: InspectFn
) -> None:
    labels = make_labels("a\nb\nc\n")
    first = store.add(make_model(), name="one", task="classify", inspect=inspect, labels=labels)
    second = store.add(make_model(), name="two", task="classify", inspect=inspect, labels=labels)
    assert first.files == second.files
    assert len(list((store.root / "blobs" / "sha256").iterdir())) == 2


def test_inspect_gets_the_stored_copy(store: Store, make_model: MakeModel, inspect: InspectFn) -> None:
    seen: list[Path] = []

    def spy(path: Path) -> Specs:
        seen.append(path)
        return inspect(path)

    manifest = store.add(make_model(), name="m", task="classify", inspect=spy)
    assert seen == [store.file_path(manifest, "model")]


def state_of(store: Store) -> dict[str, bytes | None]:
    return snapshot(store.root / "models")


def test_failing_inspect_leaves_the_store_unchanged(
    store: Store, make_model: MakeModel, make_labels: MakeLabels, inspect: InspectFn
) -> None:
    store.add(make_model(), name="m", task="classify", inspect=inspect)
    before = state_of(store)

    def broken(path: Path) -> Specs:
        raise RuntimeError("protobuf parsing failed")

    with pytest.raises(ModelLoadError, match="protobuf parsing failed") as info:
        store.add(make_model(salt="new"), name="m", task="classify", inspect=broken, activate=True)
    assert info.value.hint
    with pytest.raises(ModelLoadError):
        store.add(make_model(salt="x"), name="fresh", task="classify", inspect=broken)
    assert state_of(store) == before
    assert store.list() == [ModelSummary("m", 1, (1,), "classify")]
    assert store.gc() == 2  # the two copies nothing references
    assert list((store.root / "staging").iterdir()) == []


def test_lanai_errors_from_inspect_pass_through(store: Store, make_model: MakeModel) -> None:
    def busy(path: Path) -> Specs:
        raise NotReady("backend is starting")

    with pytest.raises(NotReady):
        store.add(make_model(), name="m", task="classify", inspect=busy)


def test_missing_model_or_labels_file_leaves_the_store_untouched(
    store: Store, tmp_path: Path, make_model: MakeModel, inspect: InspectFn
) -> None:
    with pytest.raises(StoreError, match="model file .*missing.onnx does not exist") as info:
        store.add(tmp_path / "missing.onnx", name="m", task="classify", inspect=inspect)
    assert info.value.hint
    with pytest.raises(StoreError, match="labels file .*nope.txt does not exist"):
        missing = tmp_path / "nope.txt"
        store.add(make_model(), name="m", task="classify", inspect=inspect, labels=missing)
    with pytest.raises(StoreError, match="not a regular file"):
        store.add(tmp_path, name="m", task="classify", inspect=inspect)
    assert not store.root.exists()


def test_wrong_label_count_is_refused_with_both_numbers(
    store: Store, make_model: MakeModel, make_labels: MakeLabels, inspect: InspectFn
) -> None:
    with pytest.raises(StoreError, match="has 2 labels but .* has 5 classes") as info:
        labels = make_labels("a\nb\n")
        store.add(make_model(5), name="m", task="classify", inspect=inspect, labels=labels)
    assert info.value.hint
    assert state_of(store) == {}


def test_labels_that_are_not_utf8_are_refused_before_copying(
    store: Store, make_model: MakeModel, make_labels: MakeLabels, inspect: InspectFn
) -> None:
    with pytest.raises(StoreError, match="not UTF-8"):
        labels = make_labels(b"\xff\n")
        store.add(make_model(1), name="m", task="classify", inspect=inspect, labels=labels)
    assert not store.root.exists()


def test_provenance_without_a_toml_form_publishes_nothing(
    store: Store, make_model: MakeModel, inspect: InspectFn
) -> None:
    with pytest.raises(StoreError, match="cannot be written as TOML"):
        store.add(make_model(), name="m", task="classify", inspect=inspect, provenance={"x": None})
    assert state_of(store) == {}


def test_a_version_published_but_never_activated_is_handled(
    store: Store, make_model: MakeModel, inspect: InspectFn
) -> None:
    """A crash between publishing and activating leaves a version and no active file."""
    store.add(make_model(), name="m", task="classify", inspect=inspect)
    (store.root / "models" / "m" / "active").unlink()
    assert store.active("m") is None
    assert store.list() == [ModelSummary("m", None, (1,), "classify")]
    with pytest.raises(VersionNotFound, match="no active version"):
        store.manifest("m")
    store.add(make_model(salt="2"), name="m", task="classify", inspect=inspect)
    assert store.active("m") == 2


def test_file_path_of_an_unknown_role_lists_the_roles(store: Store, make_model: MakeModel, inspect: InspectFn) -> None:
    manifest = store.add(make_model(), name="m", task="classify", inspect=inspect)
    with pytest.raises(StoreError, match="has no 'labels' file") as info:
        store.file_path(manifest, "labels")
    assert info.value.hint == "its files are: model"
