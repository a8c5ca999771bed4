from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from lanai.errors import StoreError
from lanai.store import Blobs, check_digest


@pytest.fixture
def blobs(tmp_path: Path) -> Blobs:
    staging = tmp_path / "staging"
    staging.mkdir()
    return Blobs(tmp_path / "blobs" / "sha256", staging)


def test_put_names_the_blob_by_its_sha256_and_is_idempotent(blobs: Blobs, tmp_path: Path) -> None:
    source = tmp_path / "weights.bin"
    source.write_bytes(os.urandom(3 * (1 << 20) + 7))  # several copy chunks
    digest, size = blobs.put(source)
    assert digest == hashlib.sha256(source.read_bytes()).hexdigest()
    assert size == source.stat().st_size
    assert blobs.path(digest).read_bytes() == source.read_bytes()
    assert blobs.put(source) == (digest, size)
    assert blobs.put_bytes(source.read_bytes()) == (digest, size)
    assert blobs.digests() == [digest]
    assert list(blobs.staging.iterdir()) == []
    with blobs.open(digest) as stream:
        assert stream.read(4) == source.read_bytes()[:4]


@pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
def test_blobs_are_read_only(blobs: Blobs) -> None:
    digest, _ = blobs.put_bytes(b"abc")
    assert blobs.path(digest).stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) == 0


def test_verify_detects_a_changed_or_missing_blob(blobs: Blobs) -> None:
    digest, _ = blobs.put_bytes(b"weights")
    assert blobs.verify(digest)
    path = blobs.path(digest)
    path.chmod(0o644)
    path.write_bytes(b"bit rot")
    assert not blobs.verify(digest)
    blobs.delete(digest)
    assert not blobs.verify(digest)
    with pytest.raises(StoreError, match="missing"):
        blobs.open(digest)


@pytest.mark.parametrize("digest", ["", "../../etc/passwd", "AB" * 32, "ab" * 31, "g" * 64, None])
def test_digests_are_checked_before_they_become_paths(blobs: Blobs, digest: object) -> None:
    with pytest.raises(StoreError, match="not a sha256 digest"):
        check_digest(digest)
    with pytest.raises(StoreError):
        blobs.path(digest)  # type: ignore[arg-type]


def test_put_of_an_unreadable_source_is_a_store_error(blobs: Blobs, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="could not copy") as info:
        blobs.put(tmp_path / "missing.bin")
    assert info.value.hint
