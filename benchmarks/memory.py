"""Peak memory of `lanai serve` on the bundled model: idle, then under classify load at c1, c16 and c64.

A sampler thread reads the RSS of the server's process tree (psutil, every 50 ms) through each phase; the
table gives each phase's peak and the load's throughput. ``--env NAME=VALUE`` starts the server with an
environment variable set (e.g. ``MALLOC_ARENA_MAX=2``), so that one knob at a time can be tried; RSS is
robust to a shared machine, throughput is not (compare throughput with benchmarks/commits.py).

    python benchmarks/memory.py                         # 10 s per phase
    python benchmarks/memory.py --env MALLOC_ARENA_MAX=2 --duration 6
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import psutil
from batching import make_store
from harness import Poster, arguments, measure, start_server

from lanai.bundled import DEFAULT_MODEL

from serving import photo

_MB = 1 << 20


class Sampler:
    """The RSS of a process and its children, read every ``interval`` s; ``peak()`` since the last reset."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self._process = psutil.Process(pid)
        self._interval = interval
        self._peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def rss(self) -> int:
        total = 0
        for process in [self._process, *self._process.children(recursive=True)]:
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._peak = max(self._peak, self.rss())

    def reset(self) -> None:
        self._peak = self.rss()

    def peak(self) -> int:
        return max(self._peak, self.rss())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def main() -> int:
    parser = arguments(__doc__.splitlines()[0], duration=10.0, concurrency=(1, 16, 64))
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server's environment")
    parser.add_argument("--batching", action="append", default=[], help="KEY=VALUE in the model's [batching]")
    args = parser.parse_args()
    for pair in args.env:
        name, _, value = pair.partition("=")
        os.environ[name] = value

    home = Path(tempfile.mkdtemp(prefix="lanai-memory-"))
    make_store(home, ",".join(args.batching))
    image = photo()
    proc, url = start_server(home)
    sampler = Sampler(proc.pid)
    try:
        poster = Poster(url)
        path = f"/v1/models/{DEFAULT_MODEL}/classify"
        time.sleep(2)  # settled after start
        sampler.reset()
        time.sleep(args.duration / 2)
        idle = sampler.peak()
        print(f"env: {' '.join(args.env) or '(none)'}; batching: {' '.join(args.batching) or '(default)'}", flush=True)
        print(f"{'phase':8} {'peak MB':>8} {'img/s':>8}", flush=True)
        print(f"{'idle':8} {idle / _MB:>8.1f} {'':>8}", flush=True)
        overall = idle
        for c in args.concurrency:
            sampler.reset()
            rate, _ = measure(lambda: poster.post(path, image, "image/jpeg"), c, args.duration)
            peak = sampler.peak()
            overall = max(overall, peak)
            print(f"{'c' + str(c):8} {peak / _MB:>8.1f} {rate:>8.1f}", flush=True)
        time.sleep(2)
        print(f"{'after':8} {sampler.rss() / _MB:>8.1f}   (RSS 2 s after the load)")
        print(f"{'peak':8} {overall / _MB:>8.1f}")
    finally:
        sampler.stop()
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
