"""API keys: stored as HMACs only, checked in constant time, revoked and expired on the spot."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from lanai.errors import ConfigError, Conflict, NotFound
from lanai.security.keys import KeyRing, ensure_admin_key, parse_duration, parse_rate


def test_a_key_is_shown_once_and_stored_only_as_a_digest(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path)
    text = ring.create("front-desk", "infer", models=["ocr"], rate=2.0)
    assert text.startswith("lanai_") and len(text) > 50
    stored = (tmp_path / "keys" / "keys.toml").read_text()
    secret_half = text.split("_", 2)[2]  # lanai_<id>_<secret>: the secret may itself hold "_"
    assert len(secret_half) == 43
    assert secret_half not in stored and text not in stored
    record = KeyRing(tmp_path).verify(text)  # another process's ring, as the server's would be
    assert record is not None and (record.name, record.role, record.models, record.rate) == (
        "front-desk", "infer", ("ocr",), 2.0)  # fmt: skip
    assert oct((tmp_path / "keys" / "secret").stat().st_mode & 0o777) == "0o600"


def test_wrong_tampered_and_foreign_keys_are_refused(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path)
    text = ring.create("a", "admin")
    other = KeyRing(tmp_path / "elsewhere").create("a", "admin")
    tampered = text[:-1] + ("A" if text[-1] != "A" else "B")
    for bad in (tampered, other, "lanai_short_x", "", "Bearer " + text, text + " "):
        assert ring.verify(bad) is None, bad


def test_revocation_and_expiry_take_effect_without_a_restart(tmp_path: Path) -> None:
    server = KeyRing(tmp_path)
    text = KeyRing(tmp_path).create("laptop", "infer", expires_in=3600, now=1000.0)
    assert server.verify(text, now=1001.0) is not None
    assert server.verify(text, now=1000.0 + 3600) is None  # expired
    KeyRing(tmp_path).revoke("laptop")  # as `lanai keys revoke` would, from another process
    deadline = time.monotonic() + 5
    while server.verify(text, now=2000.0) is not None:  # re-read once the file changed (looked at every 0.5 s)
        assert time.monotonic() < deadline, "the revoked key still works"
        time.sleep(0.05)


def test_names_roles_and_duplicates_are_checked(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path)
    ring.create("one", "infer")
    with pytest.raises(Conflict, match="exists"):
        ring.create("one", "admin")
    with pytest.raises(ConfigError, match="not allowed"):
        ring.create("../etc", "infer")
    with pytest.raises(ConfigError, match="role"):
        ring.create("two", "root")  # type: ignore[arg-type]
    with pytest.raises(NotFound, match="no key named"):
        ring.revoke("nobody")
    with pytest.raises(NotFound, match="no device is paired as 'one'.*paired devices: none"):
        ring.revoke("one", device=True)  # a key, not a device's: left alone
    assert [k.name for k in ring.list()] == ["one"]


def _create(home: str, index: int) -> None:
    KeyRing(Path(home)).create(f"k{index}", "infer")


def test_keys_created_by_racing_processes_all_survive(tmp_path: Path) -> None:
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.starmap(_create, [(str(tmp_path), i) for i in range(12)])
    assert sorted(k.name for k in KeyRing(tmp_path).list()) == sorted(f"k{i}" for i in range(12))


def test_last_use_is_written_down_and_listed(tmp_path: Path) -> None:
    server = KeyRing(tmp_path)
    text = server.create("scanner", "infer")
    assert KeyRing(tmp_path).list()[0].last_used is None
    server.verify(text, now=1234.5)
    server.flush_used()
    assert KeyRing(tmp_path).list()[0].last_used == 1234.5


def test_the_first_run_admin_key_is_written_for_this_user_only(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path)
    path = ensure_admin_key(ring)
    assert path is not None and oct(path.stat().st_mode & 0o777) == "0o600"
    record = ring.verify(path.read_text().strip())
    assert record is not None and record.role == "admin"
    assert ensure_admin_key(ring) is None  # only on first run


def test_durations_and_rates() -> None:
    assert parse_duration("30d") == 30 * 86400 and parse_duration("90m") == 5400
    assert parse_rate("20/s") == 20 and parse_rate("600/m") == 10
    for bad in ("30", "x/s", "0/s", "-1/s"):
        with pytest.raises(ConfigError):
            parse_rate(bad) if "/" in bad else parse_duration(bad)
