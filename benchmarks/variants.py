"""Compare server configurations side by side, in short alternating windows, against the in-process ceiling.

Each variant is a name, the `lanai models add` options for the bundled model, and optional LANAI_*
environment settings. Every variant's server starts once and stays up; each round then measures the
ceiling and every variant (in alternating order) for a few seconds at each concurrency. On a noisy shared
machine only such fine-grained, paired comparisons mean anything: the script prints each variant's
median ratio to the first variant and to the ceiling over the rounds, and how many cores the server kept
busy (its CPU time over the window), which shows idle cores that throughput alone hides.

    python benchmarks/variants.py --rounds 8 \\
        --variant base= \\
        --variant one-instance="--instances 1" \\
        --variant no-delay="--max-queue-delay-us 0" --env no-delay:LANAI_INTRA_OP_THREADS=2
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psutil

from lanai.bundled import DEFAULT_MODEL, bundled_model_dir

from serving import Ceiling, Server, photo


@dataclass
class Window:
    throughput: float
    busy_cores: float
    p50_ms: float


def add_model(home: Path, options: list[str]) -> None:
    source = bundled_model_dir()
    cmd = [sys.executable, "-m", "lanai.cli", "models", "--home", str(home), "add", str(source / "model.onnx"),
           "--name", DEFAULT_MODEL, "--task", "classify", "--labels", str(source / "labels.txt"),
           "--preprocess", "resize=256,crop=224,mean=127,std=128", *options]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True)


def start(home: Path, options: list[str], env: dict[str, str]) -> Server:
    add_model(home, options)
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        return Server(home)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def window(server: Server, image_path: Path, concurrency: int, seconds: float) -> Window:
    cmd = [sys.executable, "-m", "lanai.cli", "bench", server.url, "--model", DEFAULT_MODEL, "--image",
           str(image_path), "-c", str(concurrency), "-d", str(seconds), "--warmup", "0", "--json"]  # fmt: skip
    process = psutil.Process(server.proc.pid)
    before = sum(process.cpu_times()[:2])
    result = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    busy = (sum(process.cpu_times()[:2]) - before) / result["duration_s"]
    return Window(result["throughput_rps"], busy, result["latency_ms"]["p50"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", required=True, help='NAME="models add options"')
    parser.add_argument("--env", action="append", default=[], help="NAME:LANAI_SETTING=value")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per window")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16])
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lanai-variants-"))
    image = photo()
    image_path = work / "chelsea.jpg"
    image_path.write_bytes(image)
    options = {name: shlex.split(rest) for name, _, rest in (v.partition("=") for v in args.variant)}
    envs: dict[str, dict[str, str]] = {name: {} for name in options}
    for spec in args.env:
        name, _, setting = spec.partition(":")
        key, _, value = setting.partition("=")
        envs[name][key] = value

    servers = {name: start(work / name, options[name], envs[name]) for name in options}
    ceiling = Ceiling(image, spinning=True)
    results: dict[tuple[str, int], list[Window]] = {}
    ceilings: list[float] = []
    try:
        for server in servers.values():  # warm-up
            window(server, image_path, max(args.concurrency), 1.0)
        for r in range(args.rounds):
            ceilings.append(max(ceiling.throughput(size, args.duration / 2) for size in (8, 16)))
            order = list(servers) if r % 2 == 0 else list(servers)[::-1]
            line = [f"round {r + 1}: ceiling {ceilings[-1]:6.1f}/s"]
            for c in args.concurrency:
                for name in order:
                    w = window(servers[name], image_path, c, args.duration)
                    results.setdefault((name, c), []).append(w)
                    line.append(f"{name} c{c} {w.throughput:6.1f}/s {w.busy_cores:.2f} cores")
            print("  ".join(line), flush=True)
    finally:
        for server in servers.values():
            server.stop()

    first = next(iter(servers))
    ceiling_median = statistics.median(ceilings)
    print(f"\nmedians over {args.rounds} rounds ({args.duration:g} s windows); ceiling {ceiling_median:.1f}/s")
    for c in args.concurrency:
        for name in servers:
            runs = results[(name, c)]
            vs_first = [w.throughput / b.throughput for w, b in zip(runs, results[(first, c)])]
            vs_ceiling = [w.throughput / x for w, x in zip(runs, ceilings)]
            print(f"  c{c:<3} {name:<16} {statistics.median(w.throughput for w in runs):6.1f}/s"
                  f"  {statistics.median(vs_ceiling):.2f}× ceiling"
                  f"  {statistics.median(vs_first):.3f}× {first} ({min(vs_first):.2f}–{max(vs_first):.2f})"
                  f"  busy {statistics.median(w.busy_cores for w in runs):.2f} cores"
                  f"  p50 {statistics.median(w.p50_ms for w in runs):.1f} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
