"""gRPC raw contents vs REST binary tensors vs in-process, for one 224×224×3 FP32 tensor.

The tensor is a real photo preprocessed for the bundled classifier ([1, 3, 224, 224] FP32, 602 kB) and
the work is the same on every path: one Open Inference Protocol infer of it on that model.

- **in-process**: ``DataPlane.infer`` in this process (batcher included, no transport): the ceiling.
- **REST binary**: ``POST /v2/models/{m}/infer`` with the binary tensor extension (httpx, keep-alive).
- **gRPC raw**: ``ModelInfer`` with ``raw_input_contents`` (grpc.aio, one channel).

The server is a real ``lanai serve`` process with both doors on free loopback ports. Each path is
measured at concurrency 1 (latency) and 16 (throughput) in every round, in a rotating order; the
figures are medians over the rounds, and the ratios medians of each round's own ratio (paired), since
the machine is shared and noisy. Clients and server share the machine's cores, as they would on a box,
so each measurement also reports the CPU time per request of both processes together (server and this
one): at concurrency 16 the cores are saturated, and that cost is what bounds throughput.

    python benchmarks/grpc_rest.py                    # 7 rounds of 3 s per measurement
    python benchmarks/grpc_rest.py --rounds 5 --duration 8 --json results.json

Needs the test extra (grpc, scikit-image for the photo): pip install -e '.[test]'
"""

from __future__ import annotations

import argparse
import asyncio
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
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import httpx
import numpy as np
import psutil

from lanai.bundled import DEFAULT_MODEL, DEFAULT_PREPROCESS, ensure_default_model
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.grpc import inference_pb2 as pb
from lanai.grpc.inference_pb2_grpc import GRPCInferenceServiceStub
from lanai.serve import run_loop
from lanai.store import Store
from lanai.tasks.image import image_to_tensor
from lanai.types import InferRequest

PATHS = ("in-process", "REST binary", "gRPC raw")
Call = Callable[[], Awaitable[np.ndarray]]


def tensor() -> np.ndarray:
    from PIL import Image
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(data.chelsea()).save(buffer, "JPEG", quality=90)
    return image_to_tensor(buffer.getvalue(), DEFAULT_PREPROCESS)


class Server:
    """``lanai serve`` on a fresh store, HTTP and gRPC on free loopback ports."""

    def __init__(self, home: Path) -> None:
        ensure_default_model(Store(home))
        env = {**os.environ, "LANAI_HOME": str(home)}
        cmd = [sys.executable, "-m", "lanai.cli", "serve", "--host", "127.0.0.1", "--port", "0", "--grpc-port", "0"]
        self.proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
        self.url, self.grpc = self._addresses()
        self._drain = threading.Thread(target=self.proc.stderr.read, daemon=True)  # type: ignore[union-attr]
        self._drain.start()  # never let the log pipe fill

    def _addresses(self) -> tuple[str, str]:
        assert self.proc.stderr is not None
        url = None
        for line in self.proc.stderr:
            if found := re.search(r"listening on (http://\S+)", line):
                url = found.group(1)
            if found := re.search(r"gRPC \(Open Inference Protocol\) on (\S+)", line):
                if url is None:
                    break
                return url, found.group(1)
        raise RuntimeError("lanai serve exited early, or without its gRPC door (pip install -e '.[grpc]')")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self._drain.join(5)
        assert self.proc.stderr is not None
        self.proc.stderr.close()


def in_process(plane: DataPlane, pixels: np.ndarray) -> Call:
    async def call() -> np.ndarray:
        return (await plane.infer(DEFAULT_MODEL, InferRequest({"input": pixels}))).outputs["logits"]

    return call


def rest(client: httpx.AsyncClient, pixels: np.ndarray) -> Call:
    blob = pixels.tobytes()
    header = json.dumps({
        "inputs": [{"name": "input", "shape": list(pixels.shape), "datatype": "FP32",
                    "parameters": {"binary_data_size": len(blob)}}],
        "parameters": {"binary_data_output": True},
    }).encode()  # fmt: skip
    body, headers = header + blob, {"Inference-Header-Content-Length": str(len(header))}

    async def call() -> np.ndarray:
        response = await client.post(f"/v2/models/{DEFAULT_MODEL}/infer", content=body, headers=headers)
        response.raise_for_status()
        length = int(response.headers["Inference-Header-Content-Length"])
        return np.frombuffer(response.content, np.float32, offset=length).reshape(1, -1)

    return call


def grpc_raw(stub: GRPCInferenceServiceStub, pixels: np.ndarray) -> Call:
    request = pb.ModelInferRequest(model_name=DEFAULT_MODEL, raw_input_contents=[pixels.tobytes()])
    request.inputs.add(name="input", datatype="FP32", shape=pixels.shape)

    async def call() -> np.ndarray:
        response = await stub.ModelInfer(request)
        return np.frombuffer(response.raw_output_contents[0], np.float32).reshape(1, -1)

    return call


async def measure(call: Call, concurrency: int, seconds: float, server: psutil.Process) -> dict:
    """``concurrency`` callers in a closed loop for ``seconds``: requests per second, latency, and the CPU
    time per request of the server and this process together."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def caller() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    cpu_before, started = _cpu(server), time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - started, _cpu(server) - cpu_before
    latencies.sort()
    return {
        "throughput_rps": len(latencies) / elapsed,
        "cpu_ms_per_request": cpu / len(latencies) * 1e3,
        "p50_ms": statistics.median(latencies) * 1e3,
        "p95_ms": latencies[int(0.95 * (len(latencies) - 1))] * 1e3,
    }


def _cpu(server: psutil.Process) -> float:
    """CPU seconds used so far by the server and this process (user and system)."""
    total = 0.0
    for process in (server, psutil.Process()):
        times = process.cpu_times()
        total += times.user + times.system
    return total


async def run(args: argparse.Namespace, server: Server, home: Path) -> list[dict]:
    pixels, process = tensor(), psutil.Process(server.proc.pid)
    settings = Settings(home=home)
    plane = DataPlane(Store(home), settings)
    await plane.start()
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
    try:
        async with (
            httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client,
            grpc.aio.insecure_channel(server.grpc, options=options) as channel,
        ):
            calls = dict(
                zip(
                    PATHS,
                    (
                        in_process(plane, pixels),
                        rest(client, pixels),
                        grpc_raw(GRPCInferenceServiceStub(channel), pixels),
                    ),
                )
            )
            answers = {name: int((await call()).argmax()) for name, call in calls.items()}
            if len(set(answers.values())) != 1:
                raise RuntimeError(f"the paths disagree: {answers}")
            for call in calls.values():  # warm-up: connections, threads, caches
                await measure(call, 16, 1.0, process)
            rounds = []
            for r in range(args.rounds):
                order = PATHS[r % 3 :] + PATHS[: r % 3]
                result = {
                    c: {name: await measure(calls[name], c, args.duration, process) for name in order} for c in (1, 16)
                }
                line = "; ".join(
                    f"{name}: c1 p50 {result[1][name]['p50_ms']:.2f} ms, c16 {result[16][name]['throughput_rps']:.1f}/s"
                    for name in PATHS
                )
                print(f"round {r + 1}: {line}", flush=True)
                rounds.append(result)
            return rounds
    finally:
        await plane.shutdown()


def summarise(rounds: list[dict]) -> dict:
    """Medians over the rounds; each ratio is the median of the rounds' own ratios."""
    med = statistics.median
    figures = {
        name: {
            "c1_p50_ms": med(r[1][name]["p50_ms"] for r in rounds),
            "c1_rps": med(r[1][name]["throughput_rps"] for r in rounds),
            "c16_rps": med(r[16][name]["throughput_rps"] for r in rounds),
            "c16_p50_ms": med(r[16][name]["p50_ms"] for r in rounds),
            "c16_p95_ms": med(r[16][name]["p95_ms"] for r in rounds),
            "c16_cpu_ms": med(r[16][name]["cpu_ms_per_request"] for r in rounds),
        }
        for name in PATHS
    }
    ratios = {
        f"{a} / {b}": {
            "c1_p50": med(r[1][a]["p50_ms"] / r[1][b]["p50_ms"] for r in rounds),
            "c16_rps": med(r[16][a]["throughput_rps"] / r[16][b]["throughput_rps"] for r in rounds),
            "c16_cpu": med(r[16][a]["cpu_ms_per_request"] / r[16][b]["cpu_ms_per_request"] for r in rounds),
        }
        for a, b in (("gRPC raw", "REST binary"), ("gRPC raw", "in-process"), ("REST binary", "in-process"))
    }
    return {"figures": figures, "ratios": ratios}


def print_summary(summary: dict, rounds: int) -> None:
    print(f"\nmedians of {rounds} rounds:")
    print(f"{'path':<12} {'c1 p50 ms':>10} {'c1 req/s':>9} {'c16 req/s':>10} {'c16 p50 ms':>11} {'c16 p95 ms':>11} "
          f"{'c16 CPU ms/req':>15}")  # fmt: skip
    for name, row in summary["figures"].items():
        print(f"{name:<12} {row['c1_p50_ms']:>10.2f} {row['c1_rps']:>9.1f} {row['c16_rps']:>10.1f} "
              f"{row['c16_p50_ms']:>11.2f} {row['c16_p95_ms']:>11.2f} {row['c16_cpu_ms']:>15.2f}")  # fmt: skip
    print("ratios (paired by round): c1 p50 latency and c16 CPU per request (lower is better), c16 throughput (higher)")
    for pair, ratio in summary["ratios"].items():
        print(f"  {pair:<26} latency ×{ratio['c1_p50']:.3f}   throughput ×{ratio['c16_rps']:.3f}   "
              f"CPU/request ×{ratio['c16_cpu']:.3f}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="lanai-grpc-bench-"))
    server = Server(home)
    holder: dict[str, list[dict]] = {}

    async def go() -> None:
        holder["rounds"] = await run(args, server, home)

    try:
        run_loop(go())  # the server's own event loop (uvloop where installed), for the in-process path too
    finally:
        server.stop()
    summary = summarise(holder["rounds"])
    print_summary(summary, args.rounds)
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "rounds": holder["rounds"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
