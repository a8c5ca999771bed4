"""What the task benchmarks share: their command line, a `lanai serve` process on a store, a closed-loop
load of `concurrency` workers for a while (throughput and median latency), rounds that alternate the
contenders, and the table of medians with the server/in-process ratio."""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "arguments",
    "start_server",
    "Poster",
    "measure",
    "interleave",
    "report",
    "face_off",
    "classify_face_off",
    "Results",
]

Results = dict[tuple[str, int], list[tuple[float, float]]]
"""(contender, concurrency) → each round's (calls per second, median seconds)."""


def arguments(
    description: str, *, duration: float = 8.0, concurrency: Sequence[int] = (1, 16)
) -> argparse.ArgumentParser:
    """The options every task benchmark takes: --rounds, --duration and --concurrency."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=duration)
    parser.add_argument("--concurrency", type=int, nargs="+", default=list(concurrency))
    return parser


def start_server(
    home: Path, env: Mapping[str, str] | None = None, cpus: Collection[int] | None = None
) -> tuple[subprocess.Popen[str], str]:
    """`lanai serve` on ``home``, on a free loopback port, HTTP only, with ``env`` added to this process's
    environment and, with ``cpus``, its CPU affinity set to those (the whole process tree: children inherit
    it); returns the process and its URL."""
    cmd = [sys.executable, "-m", "lanai.cli", "serve", "--home", str(home), "--host", "127.0.0.1", "--port", "0",
           "--no-grpc", "--no-admin-loopback"]  # fmt: skip
    pin = None if cpus is None else functools.partial(os.sched_setaffinity, 0, set(cpus))
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}, preexec_fn=pin)
    assert proc.stderr is not None
    for line in proc.stderr:
        found = re.search(r"listening on (https?://\S+)", line)
        if found:
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, found.group(1).replace("0.0.0.0", "127.0.0.1")
    raise RuntimeError("lanai serve exited early")


class Poster:
    """A light HTTP client for the load: one keep-alive ``http.client`` connection per worker thread.

    The client shares the machine's cores with the server, so it should cost as little as it can: httpx
    spends several times http.client's CPU per request, which a 2-core box takes from the server."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._local = threading.local()

    def post(
        self, path: str, body: bytes | str | dict[str, Any], content_type: str = "application/octet-stream"
    ) -> Any:
        """POST ``body`` (a dict goes as JSON) and the answer's JSON; anything but 200 raises."""
        if isinstance(body, dict):
            body, content_type = json.dumps(body), "application/json"
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = http.client.HTTPConnection(self._host, self._port, timeout=120)
        connection.request("POST", path, body, {"Content-Type": content_type})
        answer = connection.getresponse()
        data = answer.read()
        if answer.status != 200:
            raise RuntimeError(f"POST {path}: {answer.status} {data[:300]!r}")
        return json.loads(data)


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


def interleave(
    contenders: Sequence[tuple[str, Callable[[], object]]], rounds: int, concurrency: Sequence[int], duration: float
) -> Results:
    """Each contender at each concurrency, ``rounds`` times; odd rounds run the contenders in reverse order,
    so that neither always goes first on a machine whose speed drifts."""
    results: Results = {}
    for n in range(rounds):
        for c in concurrency:
            for name, work in contenders if n % 2 == 0 else contenders[::-1]:
                results.setdefault((name, c), []).append(measure(work, c, duration))
    return results


def report(results: Results, concurrency: Sequence[int], names: Sequence[str], unit: str) -> None:
    """Medians per contender and concurrency, and the ratio of the first contender's rate to the second's."""
    print(f"{'':12} {'c':>3} {unit + '/s':>10} {'ms p50':>9}")
    for c in concurrency:
        rates = {}
        for name in names:
            rows = results[(name, c)]
            rates[name] = statistics.median(r for r, _ in rows)
            print(f"{name:12} {c:>3} {rates[name]:>10.2f} {statistics.median(s for _, s in rows) * 1e3:>9.2f}")
        print(f"{'ratio':12} {c:>3} {rates[names[0]] / rates[names[1]]:>10.2f}")


def face_off(contenders: Sequence[tuple[str, Callable[[], object]]], args: argparse.Namespace, unit: str) -> None:
    """Warm each contender up, run them interleaved (``args``: rounds, concurrency, duration) and print the
    table, with the ratio of the first contender's rate to the second's."""
    for _, work in contenders:
        for _ in range(20):
            work()
    results = interleave(contenders, args.rounds, args.concurrency, args.duration)
    names = [name for name, _ in contenders]
    print(f"medians over {args.rounds} rounds of {args.duration:g} s; ratio: {names[0]} / {names[1]}")
    report(results, args.concurrency, names, unit)


def classify_face_off(
    servers: Sequence[tuple[str, Path, Mapping[str, str] | None]], image: bytes, args: argparse.Namespace
) -> None:
    """`lanai serve` on each (name, store, environment), the bundled model classifying ``image`` on each,
    run against one another by :func:`face_off`; the servers are stopped afterwards."""
    from lanai.bundled import DEFAULT_MODEL

    path = f"/v1/models/{DEFAULT_MODEL}/classify"
    procs, contenders = [], []
    try:
        for name, home, env in servers:
            proc, url = start_server(home, env)
            procs.append(proc)
            poster = Poster(url)
            contenders.append((name, lambda p=poster: p.post(path, image, "image/jpeg")))
        face_off(contenders, args, "classify")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(30)
