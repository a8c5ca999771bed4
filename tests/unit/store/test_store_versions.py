from __future__ import annotations

import threading
from pathlib import Path

import pytest
from store_helpers import InspectFn, MakeModel, Specs

import lanai.store.store as store_module
from lanai.errors import ModelNotFound, StoreError, VersionNotFound
from lanai.store import Manifest, Store
from lanai.store.active import HISTORY_LIMIT, ActiveState


@pytest.fixture
def three(store: Store, make_model: MakeModel, inspect: InspectFn) -> Store:
    """Model 'm' with versions 1, 2, 3 (distinct files); version 1 active."""
    for salt in ("v1", "v2", "v3"):
        store.add(make_model(salt=salt), name="m", task="classify", inspect=inspect)
    return store


def blob_count(store: Store) -> int:
    return len(list((store.root / "blobs" / "sha256").iterdir()))


def test_activate_switches_and_rollback_undoes_step_by_step(three: Store) -> None:
    three.activate("m", 2)
    three.activate("m", 3)
    assert three.active("m") == 3
    assert three.manifest("m").version == 3
    assert three.rollback("m") == 2
    assert three.rollback("m") == 1
    with pytest.raises(StoreError, match="no earlier active version") as info:
        three.rollback("m")
    assert "versions of 'm': 1, 2, 3" in str(info.value.hint)
    assert three.active("m") == 1


def test_activating_the_active_version_changes_nothing(three: Store) -> None:
    three.activate("m", 1)
    with pytest.raises(StoreError, match="no earlier"):
        three.rollback("m")


def test_rollback_skips_removed_versions(three: Store) -> None:
    three.activate("m", 2)
    three.activate("m", 3)
    three.remove("m", 2)
    assert three.rollback("m") == 1


def test_activate_unknown_model_or_version_lists_what_exists(three: Store) -> None:
    with pytest.raises(ModelNotFound, match="no model named 'nope'") as info:
        three.activate("nope", 1)
    assert info.value.hint == "models in the store: m"
    with pytest.raises(VersionNotFound, match="has no version 7") as info:
        three.activate("m", 7)
    assert info.value.hint == "versions of 'm': 1, 2, 3"
    with pytest.raises(VersionNotFound):
        three.manifest("m", 0)
    assert three.active("m") == 1


def store_add(store: Store, make_model: MakeModel, inspect: InspectFn, salt: str = "new") -> Manifest:
    return store.add(make_model(salt=salt), name="m", task="classify", inspect=inspect)


def test_remove_a_version_never_reuses_its_number(three: Store, make_model: MakeModel, inspect: InspectFn) -> None:
    blobs = blob_count(three)
    three.remove("m", 3)
    assert three.versions("m") == [1, 2]
    assert blob_count(three) == blobs - 1
    assert (three.root / "models" / "m" / "versions" / "3.removed").exists()
    assert store_add(three, make_model, inspect).version == 4
    with pytest.raises(VersionNotFound):
        three.remove("m", 3)


def test_the_active_version_cannot_be_removed(three: Store) -> None:
    with pytest.raises(StoreError, match="version 1 of 'm' is active") as info:
        three.remove("m", 1)
    assert "remove the whole model" in str(info.value.hint)
    assert three.versions("m") == [1, 2, 3]


def test_remove_whole_model_deletes_it_and_its_blobs(three: Store, make_model: MakeModel, inspect: InspectFn) -> None:
    three.add(make_model(salt="keep"), name="other", task="detect", inspect=inspect)
    three.remove("m")
    assert [s.name for s in three.list()] == ["other"]
    assert blob_count(three) == 1
    assert list((three.root / "staging").iterdir()) == []
    with pytest.raises(ModelNotFound):
        three.versions("m")
    with pytest.raises(ModelNotFound):
        three.remove("m")
    assert store_add(three, make_model, inspect, salt="again").version == 1


def test_gc_keeps_referenced_blobs_and_clears_staging(three: Store) -> None:
    (three.root / "staging" / "tmp-left-by-a-crash").write_bytes(b"x")
    (three.root / "staging" / "removed-m-dead").mkdir()
    orphan = three.root / "blobs" / "sha256" / ("0" * 64)
    orphan.write_bytes(b"orphan")
    assert three.gc() == 1
    assert not orphan.exists()
    assert list((three.root / "staging").iterdir()) == []
    for version in three.versions("m"):
        three.file_path(three.manifest("m", version), "model")  # raises if gone


def test_gc_refuses_while_a_manifest_is_unreadable(three: Store) -> None:
    (three.root / "models" / "m" / "versions" / "2.toml").write_text("garbage =")
    with pytest.raises(StoreError, match="2.toml"):
        three.gc()
    with pytest.raises(StoreError, match="2.toml is not valid"):
        three.manifest("m", 2)
    assert three.list()[0].task == "classify"  # listing still works, from the active version
    three.activate("m", 2)
    [summary] = three.list()
    assert (summary.active, summary.task) == (2, "")
    assert summary.problem is not None and "2.toml" in summary.problem
    three.activate("m", 1)
    three.remove("m", 2)  # the way out
    assert three.gc() == 0


def test_gc_without_flock_only_collects_old_blobs(three: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "LOCKS_WORK", False)
    orphan = three.root / "blobs" / "sha256" / ("0" * 64)
    orphan.write_bytes(b"orphan")
    assert three.gc() == 0
    monkeypatch.setattr(store_module, "_UNLOCKED_GRACE_S", 0.0)
    assert three.gc() == 1


def test_gc_waits_for_an_import_in_progress(store: Store, make_model: MakeModel, inspect: InspectFn) -> None:
    results: list[int] = []
    gc_thread = threading.Thread(target=lambda: results.append(store.gc()))

    def slow_inspect(path: Path) -> Specs:
        gc_thread.start()
        gc_thread.join(timeout=0.3)
        assert gc_thread.is_alive(), "gc ran while the blob was not referenced yet"
        return inspect(path)

    manifest = store.add(make_model(), name="m", task="classify", inspect=slow_inspect)
    gc_thread.join(timeout=10)
    assert results == [0]
    assert store.file_path(manifest, "model").exists()


def test_damaged_active_file_is_reported_and_activate_repairs_it(three: Store) -> None:
    active = three.root / "models" / "m" / "active"
    active.write_text("version = 'x'")
    with pytest.raises(StoreError, match="active file .* is not valid") as info:
        three.active("m")
    assert info.value.hint
    three.activate("m", 2)
    assert three.active("m") == 2


def test_history_is_bounded() -> None:
    state = ActiveState(1)
    for version in range(2, 100):
        state = state.activated(version)
    assert len(state.history) == HISTORY_LIMIT
    assert state.rolled_back(range(100)) == ActiveState(98, state.history[:-1])


def test_concurrent_adds_from_threads_get_distinct_versions(
    store: Store, make_model: MakeModel, inspect: InspectFn
) -> None:
    paths = [make_model(salt=str(i)) for i in range(8)]
    kwargs = {"name": "m", "task": "classify", "inspect": inspect}
    threads = [threading.Thread(target=store.add, args=(p,), kwargs=kwargs) for p in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.versions("m") == list(range(1, 9))
