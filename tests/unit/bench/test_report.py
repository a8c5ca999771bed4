from __future__ import annotations

import json
from array import array

import pytest

from lanai.bench.report import BenchResult, LatencyStats, percentiles, summarize


def test_percentiles_interpolate_linearly_between_ranks() -> None:
    values = list(range(1, 101))
    assert percentiles(values, (0, 50, 95, 99, 100)) == pytest.approx([1, 50.5, 95.05, 99.01, 100])
    assert percentiles([7], (50, 99)) == [7, 7]
    assert percentiles([10, 20], (25,)) == [12.5]
    assert percentiles([3, 1, 2], (50,)) == [2]  # order of the input does not matter


def test_percentiles_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentiles([], (50,))


def test_summarize_converts_ns_to_ms() -> None:
    stats = summarize(array("q", [1_000_000 * v for v in range(1, 101)]))
    assert stats is not None
    figures = (stats.min, stats.mean, stats.p50, stats.p95, stats.p99, stats.max)
    assert figures == pytest.approx((1, 50.5, 50.5, 95.05, 99.01, 100))
    assert summarize(array("q")) is None


def _result(**kwargs: object) -> BenchResult:
    fields: dict[str, object] = {
        "url": "http://127.0.0.1:8000",
        "path": "/v1/models/m/classify",
        "concurrency": 64,
        "duration": 2.0,
        "ok": 1000,
        "errors": {"timeout": 1, "503": 4},
        "latency": LatencyStats(1.0, 2.5, 2.0, 4.0, 8.0, 9.5),
    }
    fields.update(kwargs)
    return BenchResult(**fields)  # type: ignore[arg-type]


def test_derived_figures() -> None:
    result = _result()
    assert (result.error_count, result.requests, result.throughput) == (5, 1005, 500.0)
    assert _result(duration=0.0).throughput == 0.0


def test_to_dict_is_json_ready() -> None:
    data = json.loads(json.dumps(_result().to_dict()))
    assert data["throughput_rps"] == 500.0
    assert data["errors"] == {"503": 4, "timeout": 1}
    assert data["latency_ms"] == {"min": 1.0, "mean": 2.5, "p50": 2.0, "p95": 4.0, "p99": 8.0, "max": 9.5}
    assert json.loads(json.dumps(_result(latency=None, ok=0).to_dict()))["latency_ms"] is None


def test_format_text() -> None:
    text = _result().format_text()
    assert "http://127.0.0.1:8000/v1/models/m/classify  (concurrency 64)" in text
    assert "1,000 ok, 5 errors (503: 4, timeout: 1)" in text
    assert "500.0 req/s" in text
    assert "p99" in text and "8.00" in text
    assert "no successful requests" in _result(latency=None).format_text()
