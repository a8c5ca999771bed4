from __future__ import annotations

import asyncio
import hashlib
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from bench_testservers import AppServer, RawServer

from lanai.bench import (
    BenchConfig,
    RequestSpec,
    Snapshot,
    json_request,
    multipart_request,
    raw_image_request,
    run,
    run_load,
)

GET_OK = RequestSpec("GET", "/ok")


def _config(url: str, request: RequestSpec = GET_OK, **kwargs: object) -> BenchConfig:
    options: dict[str, object] = {"concurrency": 4, "requests": 40, "warmup": 0.0, "timeout": 5.0}
    options.update(kwargs)
    return BenchConfig(url, request, **options)  # type: ignore[arg-type]


def _tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0\0\0\0")) + chunk(b"IEND", b"")
    )


def test_requests_mode_sends_exactly_n(app_server: AppServer) -> None:
    result = run(_config(app_server.url, concurrency=8, requests=101))
    assert result.ok == 101 and result.errors == {}
    assert app_server.state.hits["/ok"] == 101  # no warm-up: the server saw exactly N
    assert len(app_server.state.ports["/ok"]) == 8  # one keep-alive connection per worker
    assert result.latency is not None and 0 < result.latency.min <= result.latency.p50 <= result.latency.max


def test_warmup_requests_are_sent_but_not_recorded(app_server: AppServer) -> None:
    result = run(_config(app_server.url, concurrency=2, requests=10, warmup=0.2))
    assert result.requests == 10
    assert app_server.state.hits["/ok"] > 10


def test_duration_mode_runs_about_that_long(app_server: AppServer) -> None:
    started = time.perf_counter()
    result = run(_config(app_server.url, requests=None, duration=0.5, warmup=0.1))
    assert 0.5 <= result.duration < 0.7
    assert 0.6 <= time.perf_counter() - started < 2.0
    assert result.ok > 0 and result.errors == {}
    assert result.throughput == pytest.approx(result.ok / result.duration)


def test_non_2xx_is_an_error_by_status_and_keeps_the_connection(app_server: AppServer) -> None:
    result = run(_config(app_server.url, RequestSpec("GET", "/busy"), concurrency=3, requests=30))
    assert result.ok == 0 and result.errors == {"503": 30}
    assert result.latency is None
    assert len(app_server.state.ports["/busy"]) == 3


def test_connection_close_is_respected_with_a_new_connection(app_server: AppServer) -> None:
    result = run(_config(app_server.url, RequestSpec("GET", "/close"), concurrency=2, requests=20))
    assert result.ok == 20 and result.errors == {}
    assert len(app_server.state.ports["/close"]) == 20


def test_chunked_responses_are_read_to_the_end(app_server: AppServer) -> None:
    result = run(_config(app_server.url, RequestSpec("GET", "/chunked"), concurrency=2, requests=20))
    assert result.ok == 20 and result.errors == {}
    assert len(app_server.state.ports["/chunked"]) == 2  # each body ended where the chunks said


def test_requests_unanswered_at_the_end_are_counted_not_dropped(app_server: AppServer) -> None:
    """A server that answers some connections and leaves others waiting must not look fast: the waiting
    ones are in no percentile, but the result counts them and says how long the oldest waited."""
    result = run(_config(app_server.url, RequestSpec("GET", "/slow"), concurrency=3, requests=None,
                         duration=0.6, warmup=0.0, timeout=10.0))  # fmt: skip
    assert result.ok == 0 and result.latency is None  # /slow answers after 5 s: nothing finished
    assert result.unfinished == 3 and 550 <= result.oldest_unfinished_ms <= 700
    assert result.to_dict()["unfinished"] == 3 and "unanswered   3 at the end" in result.format_text()
    quick = run(_config(app_server.url, requests=None, duration=0.3))  # 4 connections, each always busy
    assert quick.ok > 0 and 1 <= quick.unfinished <= 4 and quick.oldest_unfinished_ms < 300


def test_a_request_sent_in_warm_up_counts_when_it_completes_in_the_window(app_server: AppServer) -> None:
    """What a request waited is measured whenever it was sent: a server that sits on the connections it
    got during warm-up must not have those waits left out of its percentiles, or out of the unanswered."""
    paused = RequestSpec("GET", "/pause?ms=500")
    result = run(_config(app_server.url, paused, concurrency=2, requests=None, duration=1.2, warmup=0.2))
    # sent at 0 s and 0.5 s, answered at 0.5 s and 1.0 s: both inside the window that runs from 0.2 s to 1.4 s
    assert result.ok >= 4 and result.latency is not None and result.latency.min >= 490
    starved = run(_config(app_server.url, RequestSpec("GET", "/slow"), concurrency=3, requests=None,
                          duration=0.4, warmup=0.3, timeout=10.0))  # fmt: skip
    assert starved.ok == 0 and starved.unfinished == 3  # each sent during warm-up, all still waiting
    assert starved.oldest_unfinished_ms >= 690  # warm-up and window both


def test_slow_responses_time_out_as_errors(app_server: AppServer) -> None:
    result = run(_config(app_server.url, RequestSpec("GET", "/slow"), concurrency=2, requests=4, timeout=0.25))
    assert result.ok == 0 and result.errors == {"timeout": 4}
    assert result.duration >= 0.5  # two rounds of 0.25 s each


def test_multipart_body_parses_on_the_server(app_server: AppServer) -> None:
    image = _tiny_png()
    request = multipart_request("/multipart", image, "tiny image.png")
    result = run(_config(app_server.url, request, concurrency=2, requests=6))
    assert result.ok == 6, result.errors
    expected = {
        "fields": ["file"],
        "filename": "tiny image.png",
        "content_type": "image/png",
        "sha256": hashlib.sha256(image).hexdigest(),
    }
    assert app_server.state.parsed == [expected] * 6


def test_raw_and_json_bodies_arrive_intact(app_server: AppServer) -> None:
    image = _tiny_png()
    assert run(_config(app_server.url, raw_image_request("/raw", image), requests=3)).ok == 3
    body = b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}'
    assert run(_config(app_server.url, json_request("/raw", body), requests=2)).ok == 2
    parsed = app_server.state.parsed
    assert parsed[:3] == [{"content_type": "image/png", "sha256": hashlib.sha256(image).hexdigest()}] * 3
    assert parsed[3:] == [{"content_type": "application/json", "sha256": hashlib.sha256(body).hexdigest()}] * 2


def test_base_url_path_prefixes_the_request_path(app_server: AppServer) -> None:
    result = run(_config(app_server.url + "/", requests=3))
    assert result.ok == 3 and result.path == "/ok" and result.url == app_server.url


def test_dropped_connections_count_and_reconnect(raw_server: RawServer) -> None:
    result = run(_config(raw_server.url, RequestSpec("GET", "/drop"), concurrency=2, requests=10))
    assert result.errors == {"connection": 10}
    assert raw_server.hits["/drop"] == 10 and raw_server.connections >= 10


@pytest.mark.parametrize("path", ["/http10", "/continue", "/chunked"])
def test_odd_but_valid_responses_are_ok(raw_server: RawServer, path: str) -> None:
    result = run(_config(raw_server.url, RequestSpec("GET", path), concurrency=2, requests=10))
    assert result.ok == 10 and result.errors == {}


def test_unreadable_responses_are_protocol_errors(raw_server: RawServer) -> None:
    result = run(_config(raw_server.url, RequestSpec("GET", "/garbage"), concurrency=2, requests=6))
    assert result.errors == {"protocol": 6}


def test_no_server_is_a_clear_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(ConnectionError, match=r"cannot connect to 127\.0\.0\.1.*Hint: is the server running"):
            run(_config(f"http://127.0.0.1:{port}"))


def test_progress_gets_snapshots_and_a_final_one(app_server: AppServer) -> None:
    snapshots: list[Snapshot] = []
    result = run(_config(app_server.url, requests=None, duration=0.35, warmup=0.1), snapshots.append)
    assert snapshots[0].warming_up and not snapshots[-2].finished and not snapshots[-2].warming_up
    final = snapshots[-1]
    assert final.finished and final.ok == result.ok and final.total_seconds == 0.35
    assert len(snapshots) <= 0.45 / 0.1 + 2  # at most ten a second, plus the final one


def test_a_failing_progress_callback_ends_the_run(app_server: AppServer) -> None:
    def broken(snapshot: Snapshot) -> None:
        raise RuntimeError("progress broke")

    with pytest.raises(RuntimeError, match="progress broke"):
        run(_config(app_server.url, requests=None, duration=5.0), broken)


def test_run_refuses_a_running_loop(app_server: AppServer) -> None:
    async def inside() -> None:
        with pytest.raises(RuntimeError, match="await run_load"):
            run(_config(app_server.url))
        assert (await run_load(_config(app_server.url, requests=5))).ok == 5

    asyncio.run(inside())


def test_throughput_at_concurrency_64() -> None:
    """Smoke test: the generator against a trivial server in its own process (prints, asserts no timing)."""
    script = Path(__file__).with_name("bench_testservers.py")
    with subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            cpu = time.process_time()
            result = run(_config(f"http://127.0.0.1:{port}", concurrency=64, requests=None, duration=2.0, warmup=0.5))
            cpu = time.process_time() - cpu
        finally:
            server.terminate()
    assert result.errors == {} and result.ok > 0
    print(f"\n{result.format_text()}\ngenerator CPU: {cpu / (result.ok or 1) * 1e6:.1f} µs per request")
