"""Compare server configurations side by side, interleaved, against the in-process ceiling.

Each variant is a name, the `lanai models add` options for the bundled model, and optional LANAI_*
environment settings; every round measures the ceiling, then each variant's fresh server at concurrency
1, 16 and 64. On a noisy machine only such interleaved comparisons mean anything.

    python benchmarks/variants.py --rounds 3 \\
        --variant base= \\
        --variant one-instance="--instances 1" \\
        --variant no-delay="--max-queue-delay-us 0" --env no-delay:LANAI_INTRA_OP_THREADS=2
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from lanai.bundled import DEFAULT_MODEL, bundled_model_dir

from serving import Ceiling, Server, bench, photo


def add_model(home: Path, options: list[str]) -> None:
    source = bundled_model_dir()
    cmd = [sys.executable, "-m", "lanai.cli", "models", "--home", str(home), "add", str(source / "model.onnx"),
           "--name", DEFAULT_MODEL, "--task", "classify", "--labels", str(source / "labels.txt"),
           "--preprocess", "resize=256,crop=224,mean=127,std=128", *options]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", required=True, help='NAME="models add options"')
    parser.add_argument("--env", action="append", default=[], help="NAME:LANAI_SETTING=value")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lanai-variants-"))
    image = photo()
    image_path = work / "chelsea.jpg"
    image_path.write_bytes(image)
    variants: dict[str, dict[str, str]] = {}
    for spec in args.variant:
        name, _, options = spec.partition("=")
        add_model(work / name, shlex.split(options))
        variants[name] = {}
    for spec in args.env:
        name, _, setting = spec.partition(":")
        key, _, value = setting.partition("=")
        variants[name][key] = value

    ceiling = Ceiling(image, spinning=True)
    for r in range(args.rounds):
        best = max(ceiling.throughput(size, args.duration / 2) for size in (8, 16))
        print(f"round {r + 1}: ceiling {best:.1f} img/s, single {ceiling.latency_ms(200):.2f} ms", flush=True)
        for name, env in variants.items():
            saved = dict(os.environ)
            os.environ.update(env)
            try:
                server = Server(work / name)
            finally:
                os.environ.clear()
                os.environ.update(saved)
            try:
                runs = {c: bench(server.url, image_path, c, args.duration) for c in (1, 16, 64)}
            finally:
                server.stop()
            print(f"  {name:<16} c1 p50 {runs[1]['latency_ms']['p50']:6.2f} ms"
                  f"  c16 {runs[16]['throughput_rps']:6.1f}/s ({runs[16]['throughput_rps'] / best:.2f}×)"
                  f"  c64 {runs[64]['throughput_rps']:6.1f}/s ({runs[64]['throughput_rps'] / best:.2f}×)",
                  flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
