from __future__ import annotations

import pytest

from lanai.bench.config import BenchConfig, Target, parse_url
from lanai.bench.requests import RequestSpec

GET = RequestSpec("GET", "/health")


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("http://127.0.0.1:8000", Target("127.0.0.1", 8000, "127.0.0.1:8000", "")),
        ("http://box.lan/", Target("box.lan", 80, "box.lan", "")),
        ("http://[::1]:9000/lanai/", Target("::1", 9000, "[::1]:9000", "/lanai")),
        ("http://user@box:81", Target("box", 81, "box:81", "")),
        ("https://box.local", Target("box.local", 443, "box.local", "", tls=True)),
        ("https://box:8443/x", Target("box", 8443, "box:8443", "/x", tls=True)),
    ],
)
def test_parse_url(url: str, target: Target) -> None:
    assert parse_url(url) == target


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("127.0.0.1:8000", r"no scheme. Hint: write it as http://127\.0\.0\.1:8000"),
        ("ftp://box", r"not an http\(s\)://"),
        ("http://box:99999", "invalid port"),
        ("http://box/?a=1", "query in the request path"),
    ],
)
def test_parse_url_says_what_to_fix(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_url(url)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of duration"),
        ({"duration": 1.0, "requests": 10}, "exactly one of duration"),
        ({"duration": 0}, "duration must be > 0"),
        ({"requests": 0}, "requests must be a whole number"),
        ({"requests": 10, "concurrency": 0}, "concurrency must be"),
        ({"requests": 10, "concurrency": 2.5}, "concurrency must be"),
        ({"requests": 10, "warmup": -1}, "warmup must be"),
        ({"requests": 10, "timeout": 0}, "timeout must be"),
    ],
)
def test_config_validation(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"url": "http://127.0.0.1:8000", "request": GET, "concurrency": 4}
    fields.update(kwargs)
    with pytest.raises(ValueError, match=message):
        BenchConfig(**fields)  # type: ignore[arg-type]


def test_config_defaults() -> None:
    config = BenchConfig("http://127.0.0.1:8000", GET, concurrency=64, duration=10)
    assert (config.warmup, config.timeout, config.requests) == (1.0, 30.0, None)
