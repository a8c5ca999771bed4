"""``lanai bench``: load-test a running server over real HTTP, the way its users' clients would.

Example (the server must be running)::

    from pathlib import Path
    from lanai.bench import BenchConfig, ProgressBar, multipart_request, run

    request = multipart_request("/v1/models/mobilenet/classify", Path("cat.jpg").read_bytes(), "cat.jpg")
    result = run(BenchConfig("http://127.0.0.1:8000", request, concurrency=64, duration=10), ProgressBar())
    print(result.format_text())
"""

from __future__ import annotations

from lanai.bench.config import BenchConfig
from lanai.bench.loadgen import run, run_load
from lanai.bench.progress import ProgressBar, Snapshot
from lanai.bench.report import BenchResult, LatencyStats
from lanai.bench.requests import RequestSpec, json_request, multipart_request, raw_image_request

__all__ = [
    "BenchConfig",
    "BenchResult",
    "LatencyStats",
    "ProgressBar",
    "RequestSpec",
    "Snapshot",
    "json_request",
    "multipart_request",
    "raw_image_request",
    "run",
    "run_load",
]
