"""The access rules: levels, roles, model scopes, rate limits, and callers that keep guessing."""

from __future__ import annotations

from pathlib import Path

import pytest

from lanai.config import Settings
from lanai.errors import ConfigError, PermissionDenied, RateLimited, Unauthenticated
from lanai.http.auth import access_of
from lanai.security.guard import ANONYMOUS, Access, Guard
from lanai.security.keys import KeyRing
from lanai.telemetry.metrics import Metrics

LAN_PEER = "192.168.1.20"


def make(tmp_path: Path, **settings: object) -> tuple[Guard, KeyRing, Metrics]:
    ring, metrics = KeyRing(tmp_path), Metrics()
    return Guard(Settings(home=tmp_path, **settings), ring, metrics), ring, metrics  # type: ignore[arg-type]


def test_by_default_inference_is_open_and_admin_needs_a_key_or_this_machine(tmp_path: Path) -> None:
    guard, ring, _ = make(tmp_path)
    nobody = guard.identify(None, LAN_PEER)
    assert nobody is ANONYMOUS
    guard.authorize(nobody, Access.INFER)
    with pytest.raises(Unauthenticated, match="needs an admin key"):
        guard.authorize(nobody, Access.ADMIN)
    guard.authorize(guard.identify(None, "127.0.0.1"), Access.ADMIN)
    guard.authorize(guard.identify(None, "::1"), Access.ADMIN)
    infer = guard.identify(ring.create("desk", "infer"), LAN_PEER)
    with pytest.raises(PermissionDenied, match="'desk' has role infer; this needs an admin key"):
        guard.authorize(infer, Access.ADMIN)
    guard.authorize(guard.identify(ring.create("ops", "admin"), LAN_PEER), Access.ADMIN)


def test_required_mode_and_no_loopback(tmp_path: Path) -> None:
    guard, ring, _ = make(tmp_path, auth="required", admin_loopback=False)
    with pytest.raises(Unauthenticated, match="needs an API key"):
        guard.authorize(guard.identify(None, "127.0.0.1"), Access.INFER)
    guard.authorize(guard.identify(None, LAN_PEER), Access.PUBLIC)
    guard.authorize(guard.identify(ring.create("desk", "infer"), LAN_PEER), Access.INFER)
    with pytest.raises(ConfigError, match="not a mode"):
        make(tmp_path, auth="open")


def test_a_key_limited_to_models_and_a_rate(tmp_path: Path) -> None:
    guard, ring, metrics = make(tmp_path)
    who = guard.identify(ring.create("ocr-only", "infer", models=["ocr"], rate=2.0), LAN_PEER)
    guard.authorize(who, Access.INFER, "ocr", now=100.0)
    with pytest.raises(PermissionDenied, match="may not use model 'defects'.*it may use: ocr"):
        guard.check_model(who, "defects")
    guard.authorize(who, Access.INFER, now=100.0)  # the burst: two requests at once
    with pytest.raises(RateLimited, match="limited to 2 requests per second") as refused:
        guard.authorize(who, Access.INFER, now=100.0)
    assert 0 < refused.value.retry_after <= 0.5
    guard.authorize(who, Access.INFER, now=100.6)  # a token came back
    assert 'reason="rate_limited"' in metrics.render().decode()


def test_an_address_that_keeps_guessing_is_slowed_down(tmp_path: Path) -> None:
    guard, ring, metrics = make(tmp_path)
    for i in range(10):
        with pytest.raises(Unauthenticated, match="not valid"):
            guard.identify(f"lanai_guessguess_{'x' * 43}", LAN_PEER, now=float(i))
    with pytest.raises(RateLimited, match="too many bad keys"):
        guard.identify(f"lanai_guessguess_{'y' * 43}", LAN_PEER, now=11.0)  # the address has to wait
    with pytest.raises(Unauthenticated):
        guard.identify(f"lanai_guessguess_{'y' * 43}", "192.168.1.21", now=11.0)  # others are not held up
    good = ring.create("real", "infer")
    assert guard.identify(good, LAN_PEER, now=11.0).name == "real"  # a right key is never held up
    guard.identify(f"lanai_guessguess_{'y' * 43}", LAN_PEER, now=71.0, access=Access.INFER)  # lan: no error
    assert 'reason="invalid"' in metrics.render().decode()


def test_the_legacy_single_key_is_an_admin_key_that_everyone_needs(tmp_path: Path) -> None:
    guard, _, _ = make(tmp_path, api_key="s3cret")
    guard.authorize(guard.identify("s3cret", LAN_PEER), Access.ADMIN)
    with pytest.raises(Unauthenticated):
        guard.authorize(guard.identify(None, "127.0.0.1"), Access.INFER)


@pytest.mark.parametrize(
    ("method", "path", "access"),
    [
        ("GET", "/health", Access.PUBLIC),
        ("GET", "/v2/health/ready", Access.PUBLIC),
        ("POST", "/v1/models/efficientnet-lite0/classify", Access.INFER),
        ("POST", "/v1/models/m/versions/2/classify", Access.INFER),
        ("POST", "/predict", Access.INFER),
        ("GET", "/v2/models/m/versions/1/ready", Access.INFER),
        ("POST", "/v2/models/m/infer", Access.INFER),
        ("POST", "/v1/chat/completions", Access.INFER),
        ("POST", "/v1/pipelines/caption", Access.INFER),
        ("POST", "/v2/repository/models/m/load", Access.ADMIN),
        ("POST", "/v2/repository/models/m/unload", Access.ADMIN),
        ("GET", "/metrics", Access.ADMIN),
        ("DELETE", "/v1/models/m/classify", Access.ADMIN),
        ("GET", "/some/new/route", Access.ADMIN),  # deny by default
    ],
)
def test_routes_are_admin_unless_listed(method: str, path: str, access: Access) -> None:
    assert access_of(method, path) is access


def test_a_placeholder_key_is_no_error_where_no_key_is_needed(tmp_path: Path) -> None:
    guard, _, metrics = make(tmp_path)
    for _ in range(20):  # the openai client's api_key="unused", request after request: never slowed down
        assert guard.identify("unused", LAN_PEER, Access.INFER) is ANONYMOUS
    with pytest.raises(Unauthenticated, match="not valid"):
        guard.identify("unused", LAN_PEER, Access.ADMIN)
    strict, _, _ = make(tmp_path / "strict", auth="required")
    with pytest.raises(Unauthenticated, match="not valid"):
        strict.identify("unused", LAN_PEER, Access.INFER)


def test_a_key_limited_to_some_requests_at_once(tmp_path: Path) -> None:
    guard, ring, metrics = make(tmp_path)
    who = guard.identify(ring.create("batch-job", "infer", concurrency=2), LAN_PEER)
    guard.authorize(who, Access.INFER)
    guard.authorize(who, Access.INFER)
    with pytest.raises(RateLimited, match="'batch-job' already has 2 requests running"):
        guard.authorize(who, Access.INFER)
    guard.release(who)
    guard.authorize(who, Access.INFER)  # one finished: room for another
    assert 'reason="concurrency"' in metrics.render().decode()
