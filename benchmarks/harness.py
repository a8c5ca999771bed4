"""What the task benchmarks share: a `lanai serve` process on a store, and a closed-loop load of
`concurrency` workers for a while (throughput and median latency)."""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

__all__ = ["start_server", "measure"]


def start_server(home: Path) -> tuple[subprocess.Popen[str], str]:
    """`lanai serve` on ``home``, on a free loopback port, HTTP only; returns the process and its URL."""
    cmd = [sys.executable, "-m", "lanai.cli", "serve", "--home", str(home), "--host", "127.0.0.1", "--port", "0",
           "--no-grpc", "--no-admin-loopback"]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        found = re.search(r"listening on (https?://\S+)", line)
        if found:
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, found.group(1).replace("0.0.0.0", "127.0.0.1")
    raise RuntimeError("lanai serve exited early")


def measure(work: Callable[[], object], concurrency: int, duration: float) -> tuple[float, float]:
    """Calls of ``work`` per second and their median seconds, ``concurrency`` workers for ``duration`` s."""
    latencies: list[float] = []
    deadline = time.perf_counter() + duration

    def worker() -> None:
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            work()
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(worker) for _ in range(concurrency)]:
            future.result()
    return len(latencies) / (time.perf_counter() - began), statistics.median(latencies)
