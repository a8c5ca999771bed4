"""The embedding cache: LRU by bytes, disk persistence, and invalidation when a model version changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lanai.dataplane.embed_cache import CacheKey, EmbeddingCache, content_digest
from lanai.tasks.base import NoParams


def key(text: str, version: str = "1", model: str = "m") -> CacheKey:
    return CacheKey(model, version, "embed", NoParams(), content_digest(text))


def rows(value: float) -> dict[str, np.ndarray]:
    return {"vector": np.full((1, 256), value, np.float32), "tokens": np.array([3])}  # ~1 KiB an entry


def test_hits_misses_and_lru_by_bytes() -> None:
    counts = {"hit": 0, "miss": 0}
    cache = EmbeddingCache(3 * 1300, on_hit=lambda m: counts.__setitem__("hit", counts["hit"] + 1),
                           on_miss=lambda m: counts.__setitem__("miss", counts["miss"] + 1))  # fmt: skip
    for i in range(3):
        cache.put(key(f"t{i}"), rows(i))
    assert cache.get(key("t0")) is not None  # t0 is now the most recent
    cache.put(key("t3"), rows(3))  # over budget: t1, the least recently used, goes
    assert cache.get(key("t1")) is None and cache.get(key("t0")) is not None
    assert len(cache) == 3 and cache.bytes <= cache.max_bytes
    cache.count(key("t0"), True)
    cache.count(key("t1"), False)
    assert counts == {"hit": 1, "miss": 1}


def test_an_entry_is_a_copy() -> None:
    cache = EmbeddingCache(1 << 20)
    value = rows(1.0)
    cache.put(key("a"), value)
    value["vector"][:] = 7
    found = cache.get(key("a"))
    assert found is not None and float(found["vector"][0, 0]) == 1.0


def test_keys_differ_by_version_task_and_content() -> None:
    assert key("a") != key("a", version="2") != key("b")
    assert key("a").file_name != CacheKey("m", "1", "embed-image", NoParams(), content_digest("a")).file_name


def test_disk_entries_survive_a_restart_and_die_with_their_version(tmp_path: Path) -> None:
    cache = EmbeddingCache(1 << 20, tmp_path)
    cache.put(key("a"), rows(2.0))
    cache.write(key("a"), rows(2.0))
    fresh = EmbeddingCache(1 << 20, tmp_path)
    assert fresh.get(key("a")) is None  # not in memory …
    found = fresh.read(key("a"))  # … but on disk
    assert found is not None and float(found["vector"][0, 0]) == 2.0
    assert fresh.get(key("a")) is not None  # and now in memory too
    fresh.drop_other_versions("m", "2")  # version 2 loaded: version 1's answers go, here and on disk
    assert fresh.get(key("a")) is None and fresh.read(key("a")) is None
    assert not (tmp_path / "m" / "1").exists()


def test_a_damaged_disk_entry_is_a_miss(tmp_path: Path) -> None:
    cache = EmbeddingCache(1 << 20, tmp_path)
    cache.write(key("a"), rows(1.0))
    path = next(tmp_path.rglob("*.npz"))
    path.write_bytes(b"not an npz")
    assert cache.read(key("a")) is None
