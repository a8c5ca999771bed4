"""Serving vs the in-process ceiling, in one run, for the bundled default model.

The ceiling is the same work (JPEG decode + preprocess + inference) done in this process with no server,
at the best batch size and runtime setting, picked in a calibration pass and then measured afresh in
every round. The server is a real ``lanai serve`` process loaded by ``lanai bench`` at concurrency 1, 16
and 64. Each round measures the ceiling, then the server; the ratios are medians of each round's own
ratio, because the machine is shared and noisy. Also measured: time from start to /health 200, idle RSS.

    python benchmarks/serving.py                      # defaults: 3 rounds of 8 s per measurement
    python benchmarks/serving.py --rounds 5 --duration 10 --json results.json

Needs the test extra (scikit-image for the photo): pip install -e '.[test]'
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

from lanai.backends import BackendOptions
from lanai.backends.onnx import OnnxBackend
from lanai.bundled import DEFAULT_MODEL, DEFAULT_PREPROCESS, bundled_model_dir
from lanai.tasks.image import image_to_tensor

BATCH_SIZES = (1, 2, 4, 8, 16)


def photo() -> bytes:
    from PIL import Image
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(data.chelsea()).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


class Ceiling:
    """Decode + preprocess + inference in this process, on the bundled model.

    ``spinning`` False is the server's own setting; True is onnxruntime's default (idle threads spin),
    which a plain script gets. The benchmark measures both and holds the server to the better one.
    """

    def __init__(self, image: bytes, spinning: bool) -> None:
        self.image = image
        options = BackendOptions(providers=("cpu",), allow_spinning=spinning)
        self.backend = OnnxBackend.load(bundled_model_dir() / "model.onnx", options)

    def _one_batch(self, size: int) -> None:
        tensors = [image_to_tensor(self.image, DEFAULT_PREPROCESS) for _ in range(size)]
        self.backend.run({"input": np.concatenate(tensors)})

    def throughput(self, size: int, seconds: float) -> float:
        self._one_batch(size)  # warm-up
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            self._one_batch(size)
            done += size
        return done / (time.perf_counter() - start)

    def latency_ms(self, count: int = 300) -> float:
        times = []
        for _ in range(count):
            start = time.perf_counter()
            self._one_batch(1)
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1e3


class Server:
    """``lanai serve`` on a fresh store and a free loopback port."""

    def __init__(self, home: Path) -> None:
        env = {**os.environ, "LANAI_HOME": str(home)}
        cmd = [sys.executable, "-m", "lanai.cli", "serve", "--host", "127.0.0.1", "--port", "0"]
        code = f"import lanai.bundled as b, lanai.store as s; b.ensure_default_model(s.Store({str(home)!r}))"
        ensure = [sys.executable, "-c", code]
        subprocess.run(ensure, check=True, env=env)  # first-run import is not part of start-up time
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
        self.url = self._address()
        self.ready_s = self._wait_ready()
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()  # never let the log pipe fill

    def _address(self) -> str:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                return found.group(1)
        raise RuntimeError("lanai serve exited early")

    def _wait_ready(self) -> float:
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return time.perf_counter() - self.started
            except httpx.TransportError:
                time.sleep(0.005)

    def rss_mb(self) -> float:
        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def bench(url: str, image_path: Path, concurrency: int, seconds: float) -> dict:
    cmd = [sys.executable, "-m", "lanai.cli", "bench", url, "--model", DEFAULT_MODEL, "--image", str(image_path),
           "-c", str(concurrency), "-d", str(seconds), "--warmup", "1", "--json"]  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measurement")
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]

    image = photo()
    work = Path(tempfile.mkdtemp(prefix="lanai-bench-"))
    image_path = work / "chelsea.jpg"
    image_path.write_bytes(image)
    ceilings = {
        "server settings": Ceiling(image, spinning=False),
        "onnxruntime defaults": Ceiling(image, spinning=True),
    }
    server = Server(work / "home")
    time.sleep(1.0)
    idle_rss = server.rss_mb()
    print(f"server ready after {server.ready_s:.2f} s, idle RSS {idle_rss:.1f} MB", flush=True)

    # Calibration: every runtime setting and batch size, twice; the best is the ceiling from then on. Picking
    # it on these numbers and measuring it afresh in each round keeps the maximum of ten noisy figures
    # from lifting the ceiling.
    passes = [
        {f"{name}, batch {size}": ceiling.throughput(size, args.duration / 3)
         for name, ceiling in ceilings.items() for size in BATCH_SIZES}
        for _ in range(2)
    ]  # fmt: skip
    calibration = {key: statistics.mean(p[key] for p in passes) for key in passes[0]}
    best_key = max(calibration, key=calibration.__getitem__)
    best_setting, _, best_size = best_key.rpartition(", batch ")
    singles = {name: ceiling.latency_ms() for name, ceiling in ceilings.items()}
    fast_setting = min(singles, key=singles.__getitem__)
    print(f"calibration: ceiling {best_key} ({calibration[best_key]:.1f} img/s); "
          f"single image fastest with {fast_setting} ({singles[fast_setting]:.2f} ms)", flush=True)  # fmt: skip

    rounds: list[dict] = []
    try:
        for r in range(args.rounds):
            result: dict = {
                "ceiling": ceilings[best_setting].throughput(int(best_size), args.duration),
                "single_ms": ceilings[fast_setting].latency_ms(),
                "server": {c: bench(server.url, image_path, c, args.duration) for c in levels},
            }
            line = ", ".join(f"c{c} {result['server'][c]['throughput_rps']:.1f}/s" for c in levels)
            print(f"round {r + 1}: ceiling {result['ceiling']:.1f} img/s, single {result['single_ms']:.2f} ms; {line}",
                  flush=True)  # fmt: skip
            rounds.append(result)
    finally:
        server.stop()

    summary = summarise(rounds, levels, idle_rss, server.ready_s, calibration, best_key)
    print_summary(summary, levels)
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "rounds": rounds}, indent=2, default=str))
    return 0


def summarise(
    rounds: list[dict], levels: list[int], idle_rss: float, ready_s: float, calibration: dict, best: str
) -> dict:
    """Medians over the rounds; ratios are the medians of each round's own ratio (paired, not pooled)."""
    med = statistics.median
    server = {
        c: {
            "throughput": med(r["server"][c]["throughput_rps"] for r in rounds),
            "ratio": med(r["server"][c]["throughput_rps"] / r["ceiling"] for r in rounds),
            "p50_ms": med(r["server"][c]["latency_ms"]["p50"] for r in rounds),
            "p50_over_single_ms": med(r["server"][c]["latency_ms"]["p50"] - r["single_ms"] for r in rounds),
            "p95_ms": med(r["server"][c]["latency_ms"]["p95"] for r in rounds),
            "p99_ms": med(r["server"][c]["latency_ms"]["p99"] for r in rounds),
            "errors": sum(sum(r["server"][c]["errors"].values()) for r in rounds),
        }
        for c in levels
    }
    return {
        "ceiling_img_s": med(r["ceiling"] for r in rounds), "ceiling_config": best, "calibration": calibration,
        "single_ms": med(r["single_ms"] for r in rounds), "server": server,
        "idle_rss_mb": idle_rss, "ready_s": ready_s,
    }  # fmt: skip


def print_summary(s: dict, levels: list[int]) -> None:
    print("\nin-process, calibration pass (img/s):")
    for key, value in s["calibration"].items():
        print(f"  {key:<34} {value:7.1f}")
    print(f"ceiling: {s['ceiling_config']}, median {s['ceiling_img_s']:.1f} img/s; "
          f"single-image latency {s['single_ms']:.2f} ms")  # fmt: skip
    print(f"{'concurrency':>11} {'req/s':>8} {'× ceiling':>10} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for c in levels:
        row = s["server"][c]
        print(f"{c:>11} {row['throughput']:>8.1f} {row['ratio']:>10.2f} {row['p50_ms']:>8.2f} {row['p95_ms']:>8.2f} "
              f"{row['p99_ms']:>8.2f} {row['errors']:>7}")  # fmt: skip
    if 1 in s["server"]:
        print(f"p50 at concurrency 1 minus in-process latency (paired by round): "
              f"{s['server'][1]['p50_over_single_ms']:+.2f} ms")  # fmt: skip
    print(f"ready after {s['ready_s']:.2f} s; idle RSS {s['idle_rss_mb']:.1f} MB")


if __name__ == "__main__":
    sys.exit(main())
