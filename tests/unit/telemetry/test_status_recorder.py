"""The status recorder's parts: latency histograms (merged, then read), samples of a model's requests from
its outcomes with a fake clock, the windows of the report, and the handler that keeps recent errors."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest

from lanai.dataplane.outcomes import Outcomes
from lanai.errors import ConfigError
from lanai.protocol.health import DeviceStatus, FailedModel, HealthReport, ModelStatus
from lanai.telemetry.monitor import Condition
from lanai.telemetry.status import EDGES, LatencyHistogram, RecentErrors, StatusRecorder


def histogram_of(seconds: list[float]) -> LatencyHistogram:
    histogram = LatencyHistogram()
    for s in seconds:
        histogram.add(s)
    return histogram


def test_buckets_are_log_spaced_from_a_tenth_of_a_millisecond_to_100_seconds() -> None:
    assert EDGES[0] == pytest.approx(1e-4) and EDGES[-1] == pytest.approx(100.0)
    ratios = np.diff(np.log10(EDGES))
    assert np.allclose(ratios, 0.1)


def test_quantiles_are_within_a_bucket_of_the_exact_ones() -> None:
    latencies = list(np.random.default_rng(0).lognormal(np.log(0.02), 0.6, 5000))
    histogram = histogram_of(latencies)
    assert histogram.count == 5000
    for q in (0.5, 0.95, 0.99):
        exact = float(np.quantile(latencies, q))
        assert histogram.quantile(q) == pytest.approx(exact, rel=0.26)
    assert LatencyHistogram().quantile(0.5) is None


def test_extremes_land_in_the_first_and_last_buckets() -> None:
    histogram = histogram_of([0.0, 1e-6, 500.0])
    assert histogram.counts[0] == 2 and histogram.counts[-1] == 1
    assert histogram.quantile(1.0) == EDGES[-1]
    assert histogram.quantile(0.0) is not None and histogram.quantile(0.0) <= EDGES[0]  # type: ignore[operator]


def test_merged_histograms_give_the_quantiles_of_all_latencies_not_the_average_of_each() -> None:
    fast, slow = [0.010] * 90, [1.0] * 10  # two intervals: one busy and fast, one quiet and slow
    merged = LatencyHistogram.merged([histogram_of(fast), histogram_of(slow)])
    assert merged.count == 100
    assert merged.quantile(0.5) == pytest.approx(0.010, rel=0.26)  # the average of the medians would be ~0.5 s
    assert merged.quantile(0.95) == pytest.approx(1.0, rel=0.26)
    assert merged.quantile(0.5) <= merged.quantile(0.95)  # type: ignore[operator]


# -- the recorder, with a fake clock ---------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeOutcomes:
    """Outcomes with the times of its rows given (the real one stamps them with time.monotonic())."""

    def __init__(self) -> None:
        self.rows: list[tuple[float, bool, float]] = []

    def rows_since(self, t: float) -> list[tuple[float, bool, float]]:
        return [row for row in self.rows if row[0] > t]


def health(*names: str) -> HealthReport:
    device = DeviceStatus("x86_64", 4, 1.0, None, 1000.0, 500.0, 50.0, None, None)
    models = tuple(ModelStatus(n, "1", "classify", "onnx", "CPUExecutionProvider", 4, 0) for n in names)
    return HealthReport("healthy", "0.1", 12.0, models, (FailedModel("broken", "no file"),), {}, device)


def recorder_with(sources: dict[str, FakeOutcomes], clock: Clock, interval: float = 5.0) -> StatusRecorder:
    condition = Condition(temperature_c=51.5, throttled=("throttled",))
    return StatusRecorder(interval, lambda: condition, lambda: sources, clock=clock)


def test_each_sample_counts_the_requests_since_the_one_before() -> None:
    clock, tiny = Clock(), FakeOutcomes()
    recorder = recorder_with({"tiny": tiny}, clock)
    tiny.rows += [(1001.0, True, 0.010), (1002.0, True, 0.020), (1003.0, False, 0.5)]
    clock.now = 1005.0
    first = recorder.sample()
    assert first.models["tiny"].requests == 3 and first.models["tiny"].failures == 1
    assert first.models["tiny"].latency is not None and first.models["tiny"].latency.count == 2  # failures untimed
    assert first.span_s == 5.0
    assert first.device is not None and first.device.temperature_c == 51.5 and first.device.throttled is True
    assert 0.0 <= first.device.cpu_percent <= 100.0 and first.device.rss_mb > 0 and first.device.memory_used_mb > 0
    clock.now = 1010.0
    second = recorder.sample()
    assert second.models["tiny"].requests == 0 and second.models["tiny"].p50_s is None


def test_the_report_reads_windows_from_merged_samples_and_counts_what_is_not_sampled_yet() -> None:
    clock, tiny = Clock(), FakeOutcomes()
    recorder = recorder_with({"tiny": tiny}, clock)
    # 10 minutes of samples, 5 s apart: 2 requests in each (10 ms and 30 ms), none failed
    for i in range(120):
        start = 1000.0 + 5 * i
        tiny.rows += [(start + 1, True, 0.010), (start + 2, True, 0.030)]
        clock.now = start + 5
        recorder.sample()
    tiny.rows += [(clock.now + 1, True, 0.010), (clock.now + 2, False, 1.0)]  # not sampled yet
    clock.now += 2.5
    report = recorder.report(health("tiny"), [])
    (model,) = report.models
    assert model.requests_5m == 60 * 2 + 2 and model.failures_5m == 1
    assert model.requests_per_s == pytest.approx((12 * 2 + 2) / 62.5, rel=1e-3)
    assert model.p50_ms is not None and model.p95_ms is not None
    assert 10.0 * 0.8 <= model.p50_ms <= 30.0 * 1.26 and model.p95_ms == pytest.approx(30.0, rel=0.26)
    assert model.p50_ms <= model.p95_ms
    history = model.history
    assert len(history.t) == len(history.requests_per_s) == len(history.p50_ms) == len(history.p95_ms) == 120
    assert history.requests_per_s[-1] == pytest.approx(0.4)
    assert report.interval_s == 5.0 and report.failed[0].name == "broken" and report.reason == "1 model(s) did not load"
    device = report.history
    assert len(device.t) == len(device.cpu_percent) == len(device.memory_used_mb) == len(device.rss_mb) == 120
    assert len(device.temperature_c) == len(device.throttled) == 120 and device.temperature_c[0] == 51.5


def test_history_keeps_15_minutes_and_a_model_loaded_later_has_only_its_own() -> None:
    clock = Clock()
    sources: dict[str, FakeOutcomes] = {"tiny": FakeOutcomes()}
    recorder = recorder_with(sources, clock, interval=5.0)
    for i in range(200):
        if i == 190:
            sources["late"] = FakeOutcomes()
        clock.now += 5
        recorder.sample()
    report = recorder.report(health("tiny", "late"), [])
    assert len(report.history.t) == 180
    tiny, late = report.models
    assert len(tiny.history.t) == 180 and len(late.history.t) == 10
    assert late.requests_5m == 0 and late.requests_per_s == 0.0 and late.p50_ms is None


def test_the_report_is_json_in_the_shape_the_console_reads() -> None:
    clock, tiny = Clock(), FakeOutcomes()
    recorder = recorder_with({"tiny": tiny}, clock)
    clock.now += 5
    recorder.sample()
    errors = RecentErrors()
    errors.emit(logging.LogRecord("lanai.x", logging.ERROR, __file__, 1, "it broke: %s", ("badly",), None))
    data = recorder.report(health("tiny"), errors.records()).to_dict()
    assert list(data) == ["status", "reason", "version", "uptime_s", "interval_s", "device", "history", "models",
                          "failed", "errors"]  # fmt: skip
    assert list(data["history"]) == ["t", "cpu_percent", "memory_used_mb", "rss_mb", "temperature_c", "throttled"]
    model = data["models"][0]
    assert list(model) == ["name", "version", "task", "backend", "execution_provider", "queue_depth",
                           "requests_per_s", "p50_ms", "p95_ms", "requests_5m", "failures_5m", "history"]  # fmt: skip
    assert list(model["history"]) == ["t", "requests_per_s", "p50_ms", "p95_ms"]
    assert data["errors"][0]["level"] == "ERROR" and data["errors"][0]["message"] == "it broke: badly"
    assert data["failed"] == [{"name": "broken", "error": "no file"}]


def test_a_real_outcomes_gives_only_the_rows_after_a_time_newest_end_first() -> None:
    outcomes = Outcomes("1", keep=10)
    for _ in range(15):
        outcomes.record(True, 0.01)
    rows = outcomes.rows_since(0.0)
    assert len(rows) == 10 and [r[0] for r in rows] == sorted(r[0] for r in rows)
    assert outcomes.rows_since(rows[-1][0]) == [] and outcomes.rows_since(rows[4][0]) == rows[5:]


def test_started_on_a_loop_it_samples_at_once_then_every_interval() -> None:
    tiny = FakeOutcomes()
    recorder = StatusRecorder(0.05, Condition, lambda: {"tiny": tiny})

    async def run() -> int:
        recorder.start()
        assert len(recorder.samples) == 1
        await asyncio.sleep(0.3)
        await recorder.stop()
        return len(recorder.samples)

    assert asyncio.run(run()) >= 3


def test_an_interval_of_zero_is_refused_with_a_hint() -> None:
    with pytest.raises(ConfigError, match="status_interval_s"):
        StatusRecorder(0, Condition, dict)


# -- recent errors ---------------------------------------------------------------------------------------


def test_recent_errors_keep_the_last_50_warnings_and_errors_on_one_line() -> None:
    errors = RecentErrors()
    errors.install()
    errors.install()  # once only
    try:
        log = logging.getLogger("lanai.test_status")
        log.info("not kept")
        for i in range(60):
            log.warning("warning %d", i)
        log.error("two\nlines " + "x" * 1000)
        try:
            raise ValueError("bad value")
        except ValueError:
            log.exception("it failed")
        logging.getLogger("uvicorn.error").critical("uvicorn too")
    finally:
        errors.remove()
    logging.getLogger("lanai.test_status").error("after removal")
    kept = errors.records()
    assert len(kept) == 50 and kept[0].message == "warning 13"
    long = kept[-3]
    assert long.level == "ERROR" and "\n" not in long.message and long.message.startswith("two lines x")
    assert len(long.message) == 500 and long.message.endswith("…")
    assert kept[-2].message == "it failed (ValueError: bad value)" and kept[-2].logger == "lanai.test_status"
    assert kept[-1].level == "CRITICAL" and kept[-1].logger == "uvicorn.error"
    assert all(r.time > 0 for r in kept)
    assert logging.getLogger("lanai").handlers.count(errors) == 0
