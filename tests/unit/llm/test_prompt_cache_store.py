"""lanai.prompt_cache.PromptCache on its own: longest-prefix lookup, entries superseded by longer ones, the
RAM budget spilling to disk, the disk budget, and files of another model ignored."""

from __future__ import annotations

from pathlib import Path

from lanai.prompt_cache import PromptCache


def test_the_longest_shared_beginning_wins_and_longer_entries_supersede() -> None:
    cache = PromptCache(ram_bytes=1 << 20, min_tokens=4)
    cache.keep([1, 2, 3, 4, 5], b"a" * 10)
    cache.keep([1, 2, 9, 9, 9, 9], b"b" * 10)
    entry, same = cache.best([1, 2, 3, 4, 7])  # type: ignore[misc]
    assert entry.tokens == (1, 2, 3, 4, 5) and same == 4
    assert cache.best([8, 8]) is None
    cache.keep([1, 2, 3, 4, 5, 6, 7], b"c" * 10)  # extends the first: it replaces it
    assert [e.tokens for e in cache.entries] == [(1, 2, 9, 9, 9, 9), (1, 2, 3, 4, 5, 6, 7)]
    assert cache.covers([1, 2, 3]) and not cache.covers([1, 2, 3, 8])
    cache.keep([1, 2], b"d")  # too short to be worth keeping
    assert len(cache.entries) == 2


def test_ram_spills_to_disk_and_the_disk_budget_holds(tmp_path: Path) -> None:
    cache = PromptCache(ram_bytes=25, folder=tmp_path, disk_bytes=25, min_tokens=2, identity="model-a")
    for i in range(6):  # 10 bytes each: two fit in RAM, two more on disk
        cache.keep([i, i, i], bytes([i]) * 10)
    in_ram = [e for e in cache.entries if e.state is not None]
    assert sum(e.size for e in in_ram) <= 25
    on_disk = sorted(tmp_path.glob("*.kv.npz"))
    assert on_disk and sum(e.size for e in cache.entries if e.path is not None) <= 25
    spilled = next(e for e in cache.entries if e.state is None)
    assert cache.state_of(spilled) == bytes([spilled.tokens[0]]) * 10  # read back from its file
    assert len(cache.entries) == 4 and cache.best([0, 0, 0]) is None  # the oldest fell off the disk too


def test_what_is_persisted_is_found_again_by_the_same_model_only(tmp_path: Path) -> None:
    first = PromptCache(ram_bytes=1 << 20, folder=tmp_path, disk_bytes=1 << 20, min_tokens=2, identity="model-a")
    first.keep([5, 6, 7], b"state")
    first.persist()
    again = PromptCache(ram_bytes=1 << 20, folder=tmp_path, disk_bytes=1 << 20, min_tokens=2, identity="model-a")
    entry, same = again.best([5, 6, 7, 8])  # type: ignore[misc]
    assert same == 3 and again.state_of(entry) == b"state"
    other = PromptCache(ram_bytes=1 << 20, folder=tmp_path, disk_bytes=1 << 20, min_tokens=2, identity="model-b")
    assert other.entries == [] and not list(tmp_path.glob("*.kv.npz"))  # another model's files are removed
