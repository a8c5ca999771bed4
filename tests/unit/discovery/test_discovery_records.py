"""The TXT record of a box: what it holds (no secrets), its size limit, truncation, and the round trip."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from lanai.config import Settings
from lanai.discovery import cli as discovery_cli
from lanai.discovery.advertise import box_id
from lanai.discovery.browse import Box
from lanai.discovery.records import (
    ENTRY_LIMIT,
    TXT_LIMIT,
    Advert,
    build_txt,
    instance_label,
    parse_txt,
    txt_size,
)

ADVERT = Advert(
    id="0123456789abcdef",
    version="0.1.0",
    http_port=8000,
    grpc_port=8001,
    tls=True,
    tasks=("classify", "chat", "classify"),
    models=("efficientnet-lite0", "smollm2"),
    state="ready",
)


def _wire(txt: dict[str, str]) -> dict[bytes, bytes]:
    return {k.encode(): v.encode() for k, v in txt.items()}


def test_the_record_holds_the_documented_keys_and_nothing_else() -> None:
    txt = build_txt(ADVERT)
    assert txt == {
        "id": "0123456789abcdef",
        "version": "0.1.0",
        "http": "8000",
        "grpc": "8001",
        "tls": "1",
        "state": "ready",
        "tasks": "chat,classify",
        "models": "efficientnet-lite0,smollm2",
    }


def test_no_grpc_and_no_tls_read_as_empty_and_zero() -> None:
    txt = build_txt(Advert(id="x", version="1", http_port=80))
    assert txt["grpc"] == "" and txt["tls"] == "0" and txt["models"] == "" and txt["tasks"] == ""
    back = parse_txt(_wire(txt))
    assert back.grpc_port is None and back.tls is False and back.models == ()


def test_round_trip_through_the_wire_form() -> None:
    back = parse_txt(_wire(build_txt(ADVERT)))
    assert back == Advert(
        id=ADVERT.id, version="0.1.0", http_port=8000, grpc_port=8001, tls=True,
        tasks=("chat", "classify"), models=("efficientnet-lite0", "smollm2"), state="ready",
    )  # fmt: skip


def test_many_models_are_truncated_to_whole_names_within_the_size_limit() -> None:
    models = tuple(f"model-number-{i:03d}" for i in range(100))
    txt = build_txt(Advert(id="0123456789abcdef", version="0.1.0", http_port=8000, grpc_port=8001, models=models))
    assert txt_size(txt) <= TXT_LIMIT
    assert all(len(f"{k}={v}".encode()) <= ENTRY_LIMIT for k, v in txt.items())
    kept = txt["models"].split(",")
    assert kept and kept == list(models[: len(kept)])  # whole names, in order
    assert int(txt["more"]) == len(models) - len(kept)
    back = parse_txt(_wire(txt))
    assert back.more_models == len(models) - len(kept) and back.models == tuple(kept)


def test_a_list_that_fits_the_record_but_not_one_entry_is_truncated_too() -> None:
    models = tuple(f"m{i:02d}" for i in range(70))  # 70 * 4 bytes: > 255 for one entry, < 400 overall
    txt = build_txt(Advert(id="a", version="1", http_port=1, models=models), limit=1000)
    assert len(f"models={txt['models']}".encode()) <= ENTRY_LIMIT
    assert int(txt["more"]) > 0


def test_the_whole_record_stays_within_the_limit_at_the_edge() -> None:
    for count in range(40):
        models = tuple(f"name-{i}" for i in range(count))
        txt = build_txt(Advert(id="0123456789abcdef", version="10.20.30", http_port=65535, grpc_port=65534,
                               tasks=("classify", "chat", "embed", "completion"), models=models))  # fmt: skip
        assert txt_size(txt) <= TXT_LIMIT
        back = parse_txt(_wire(txt))
        assert back.models + tuple(models[len(back.models) :]) == models
        assert back.more_models == count - len(back.models)


def test_no_secret_reaches_the_record(tmp_path: Path) -> None:
    """Keys, key files and the TLS key are nowhere in it: only the listed, public fields."""
    settings = Settings(home=tmp_path, api_key="s3cret-admin-key", metrics_key="metrics-s3cret")
    advert = Advert(id=box_id(settings), version="0.1.0", http_port=8000, models=("m",))
    wire = repr(build_txt(advert))
    assert "s3cret" not in wire
    assert set(build_txt(advert)) <= {"id", "version", "http", "grpc", "tls", "state", "tasks", "models", "more"}


def test_values_cannot_break_the_list_format() -> None:
    txt = build_txt(Advert(id="a,b\n", version="1\x00", http_port=1, models=("ok", "bad,name", "")))
    assert txt["id"] == "ab" and txt["version"] == "1"
    assert txt["models"] == "ok,badname"


def test_an_unknown_state_is_refused() -> None:
    with pytest.raises(ValueError):
        build_txt(Advert(id="a", version="1", http_port=1, state="sleeping"))


def test_parsing_tolerates_missing_and_malformed_fields() -> None:
    back = parse_txt({b"http": b"notaport", b"grpc": b"70000", b"future": None, b"STATE": b"ready"})
    assert back.http_port == 0 and back.grpc_port is None and back.state == "ready" and back.id == ""


def test_box_id_is_random_and_persisted_without_tls(tmp_path: Path) -> None:
    first = box_id(Settings(home=tmp_path))
    assert len(first) == 16 and int(first, 16) >= 0
    assert (tmp_path / "box-id").read_text().strip() == first
    assert box_id(Settings(home=tmp_path)) == first
    assert box_id(Settings(home=tmp_path / "other")) != first


def test_box_id_is_the_certificate_fingerprint_with_tls(tmp_path: Path) -> None:
    from lanai.security.certs import TlsFiles, init_authority

    fingerprint = init_authority(TlsFiles.of(tmp_path), names=["box.local"], addresses=["127.0.0.1"])
    settings = Settings(home=tmp_path, tls=True).with_store_tls()
    assert box_id(settings) == fingerprint.replace(":", "").lower()[:16]
    assert not (tmp_path / "box-id").exists()


def test_instance_label() -> None:
    assert instance_label("pi5.example.lan") == "pi5"
    assert instance_label("") == "lanai"
    assert len(instance_label("x" * 100).encode()) == 63


def _box(**changes: object) -> Box:
    fields: dict[str, object] = dict(
        name="pi5", host="pi5.local.", addresses=("fe80::1%2", "192.168.1.20"), port=8000, id="0123",
        version="0.1.0", grpc_port=8001, tls=False, tasks=("classify",), models=("m",), state="ready",
    )  # fmt: skip
    fields.update(changes)
    return Box(**fields)  # type: ignore[arg-type]


def test_box_base_url_prefers_ipv4_and_brackets_ipv6() -> None:
    assert _box().base_url == "http://192.168.1.20:8000"
    assert _box(tls=True).base_url == "https://192.168.1.20:8000"
    assert _box(addresses=("fd00::5",)).base_url == "http://[fd00::5]:8000"
    assert _box(addresses=()).base_url == "http://pi5.local:8000"
    assert _box().grpc_target == "192.168.1.20:8001" and _box(grpc_port=None).grpc_target is None


def test_box_base_url_works_with_the_client() -> None:
    from lanai.client import Client

    with Client(_box().base_url) as client:
        assert client is not None


def test_the_command_prints_a_table_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    boxes = [_box(models=("a", "b"), more_models=3)]
    monkeypatch.setattr(discovery_cli, "discover", lambda timeout, interfaces=None: boxes)
    out = io.StringIO()
    assert discovery_cli.run_discover_command(argparse.Namespace(timeout=0.1, json=False), out) == 0
    assert "http://192.168.1.20:8000" in out.getvalue() and "a,b (+3)" in out.getvalue()
    out = io.StringIO()
    assert discovery_cli.run_discover_command(argparse.Namespace(timeout=0.1, json=True), out) == 0
    [found] = json.loads(out.getvalue())
    assert found["base_url"] == "http://192.168.1.20:8000" and found["models"] == ["a", "b"]
    monkeypatch.setattr(discovery_cli, "discover", lambda timeout, interfaces=None: [])
    out = io.StringIO()
    assert discovery_cli.run_discover_command(argparse.Namespace(timeout=0.1, json=False), out) == 1
    assert "no lanai box" in out.getvalue()


def test_box_id_racing_writers_agree_and_a_damaged_file_is_replaced(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(lambda _: box_id(Settings(home=tmp_path)), range(32)))
    assert ids == {(tmp_path / "box-id").read_text().strip()}
    assert [p.name for p in tmp_path.iterdir()] == ["box-id"]  # no temporary file left
    (tmp_path / "box-id").write_text("garbage")
    new = box_id(Settings(home=tmp_path))
    assert new != "garbage" and box_id(Settings(home=tmp_path)) == new
