"""OpenVINO vs the CPU provider on the bundled model (EfficientNet-Lite0), in process and through a server.

onnxruntime-openvino cannot share a venv with plain onnxruntime, so it runs from the venv the tests build
(tests/support.py openvino_python: once, in the test cache). Three variants:

  cpu          this venv's onnxruntime, CPUExecutionProvider (what ``pip install lanai`` gives)
  openvino     onnxruntime-openvino, OpenVINOExecutionProvider (``--providers openvino,cpu``)
  ov-venv cpu  onnxruntime-openvino's own CPUExecutionProvider (in process only: its ONNX Runtime release
               is not this venv's, so this separates the provider from the release)

In process (a child process per variant, the model on lanai's OnnxBackend with the server's settings,
inference only, on the preprocessed photo): batch 1 latency p50/p95 and batch 8 throughput. Through a real
``lanai serve`` per provider: ``lanai bench`` at concurrency 1 and 16 (JPEG upload, decode, preprocess,
batching). The variants take turns within each round; the figures are medians over the rounds.

    python benchmarks/openvino.py                       # 3 rounds
    python benchmarks/openvino.py --rounds 5 --duration 8 --json ov.json

Needs the test extra (scikit-image for the photo) and the network once (the OpenVINO venv).
"""

from __future__ import annotations

import argparse
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

import lanai
from lanai.bundled import DEFAULT_MODEL

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support import encode, openvino_python, photo  # noqa: E402

SOURCE = Path(lanai.__file__).resolve().parents[1]  # the checkout's src/, for the OpenVINO venv
PROVIDERS = {"cpu": "cpu", "openvino": "openvino,cpu", "ov-venv cpu": "cpu"}


def worker(providers: str, image: Path, duration: float) -> None:
    """In the child: batch-1 latency and batch-8 throughput of the bundled model; prints JSON."""
    import numpy as np
    import onnxruntime as ort

    from lanai.backends import BackendOptions
    from lanai.backends.onnx import OnnxBackend
    from lanai.bundled import DEFAULT_PREPROCESS, bundled_model_dir
    from lanai.tasks.image import image_to_tensor

    options = BackendOptions(providers=tuple(providers.split(",")))
    backend = OnnxBackend.load(bundled_model_dir() / "model.onnx", options)
    one = image_to_tensor(image.read_bytes(), DEFAULT_PREPROCESS)
    eight = np.concatenate([one] * 8)
    for _ in range(10):
        backend.run({"input": one})
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < duration or len(times) < 50:
        t = time.perf_counter()
        backend.run({"input": one})
        times.append(time.perf_counter() - t)
    backend.run({"input": eight})
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < duration:
        backend.run({"input": eight})
        done += 8
    rate = done / (time.perf_counter() - start)
    p50, p95 = (float(np.percentile(times, q)) * 1e3 for q in (50, 95))
    print(json.dumps({"provider": backend.execution_provider, "ort": ort.__version__, "p50_ms": p50, "p95_ms": p95,
                      "batch8_img_s": rate}))  # fmt: skip


def in_process(python: Path, providers: str, image: Path, duration: float) -> dict:
    env = {**os.environ, "PYTHONPATH": str(SOURCE)}
    cmd = [str(python), __file__, "--worker", providers, "--image", str(image), "--duration", str(duration)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


class Server:
    """``lanai serve`` from ``python`` on a fresh store (the bundled model) and a free loopback port."""

    def __init__(self, python: Path, home: Path, providers: str) -> None:
        env = {**os.environ, "LANAI_HOME": str(home), "PYTHONPATH": str(SOURCE)}
        code = f"import lanai.bundled as b, lanai.store as s; b.ensure_default_model(s.Store({str(home)!r}))"
        subprocess.run([str(python), "-c", code], check=True, env=env)
        cmd = [str(python), "-m", "lanai.cli", "serve", "--host", "127.0.0.1", "--port", "0", "--no-grpc",
               "--no-discovery", "--providers", providers]  # fmt: skip
        self.proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                self.url = found.group(1)
                break
        else:
            raise RuntimeError("lanai serve exited early")
        while True:
            try:
                health = httpx.get(self.url + "/health", timeout=1)
                if health.status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        self.provider = {m["name"]: m["execution_provider"] for m in health.json()["models"]}[DEFAULT_MODEL]
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()  # never let the log pipe fill

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def bench(url: str, image: Path, concurrency: int, seconds: float) -> dict:
    cmd = [sys.executable, "-m", "lanai.cli", "bench", url, "--model", DEFAULT_MODEL, "--image", str(image),
           "-c", str(concurrency), "-d", str(seconds), "--warmup", "1", "--json"]  # fmt: skip
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)  # type: ignore[no-any-return]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per measurement")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--image", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.image, args.duration)
        return 0

    ov_python, why = openvino_python()
    if ov_python is None:
        print(f"no onnxruntime-openvino venv: {why}", file=sys.stderr)
        return 1
    pythons = {"cpu": Path(sys.executable), "openvino": ov_python, "ov-venv cpu": ov_python}
    work = Path(tempfile.mkdtemp(prefix="lanai-openvino-"))
    image = work / "chelsea.jpg"
    image.write_bytes(encode(photo("chelsea"), quality=90))
    servers = {name: Server(pythons[name], work / name, PROVIDERS[name]) for name in ("cpu", "openvino")}
    for name, server in servers.items():
        print(f"server {name}: {server.provider}", flush=True)
    rounds: list[dict] = []
    try:
        for r in range(args.rounds):
            result: dict = {"in_process": {}, "server": {}}
            for name, python in pythons.items():
                result["in_process"][name] = in_process(python, PROVIDERS[name], image, args.duration)
                if name in servers:
                    result["server"][name] = {c: bench(servers[name].url, image, c, args.duration) for c in (1, 16)}
            line = "; ".join(
                f"{name} b1 p50 {p['p50_ms']:.2f} ms, b8 {p['batch8_img_s']:.1f} img/s"
                + (f", c1 {result['server'][name][1]['throughput_rps']:.1f}/s"
                   f", c16 {result['server'][name][16]['throughput_rps']:.1f}/s" if name in servers else "")
                for name, p in result["in_process"].items()
            )  # fmt: skip
            print(f"round {r + 1}: {line}", flush=True)
            rounds.append(result)
    finally:
        for server in servers.values():
            server.stop()

    med = statistics.median
    print(f"\nmedians of {args.rounds} rounds of {args.duration:.0f} s per measurement")
    print(f"{'in process':<13} {'provider':<27} {'ORT':>7} {'b1 p50 ms':>10} {'b1 p95 ms':>10} {'b8 img/s':>9}")
    for name in pythons:
        runs = [r["in_process"][name] for r in rounds]
        print(f"{name:<13} {runs[0]['provider']:<27} {runs[0]['ort']:>7} {med(x['p50_ms'] for x in runs):>10.2f} "
              f"{med(x['p95_ms'] for x in runs):>10.2f} {med(x['batch8_img_s'] for x in runs):>9.1f}")  # fmt: skip
    print(f"{'server':<13} {'c':>3} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'errors':>7}")
    for name in servers:
        for c in (1, 16):
            runs = [r["server"][name][c] for r in rounds]
            p50, p95 = (med(x["latency_ms"][q] for x in runs) for q in ("p50", "p95"))
            print(f"{name:<13} {c:>3} {med(x['throughput_rps'] for x in runs):>8.1f} {p50:>8.2f} {p95:>8.2f} "
                  f"{sum(sum(x['errors'].values()) for x in runs):>7}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(rounds, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
