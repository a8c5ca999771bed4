"""Where a classify request's CPU goes inside the server: the event loop vs the batch threads.

CPU time is steadier than throughput on a shared machine (a neighbour's load slows both sides of a
throughput comparison, but does not add CPU time to ours), so this is the instrument for changes to the
HTTP path. Per-thread CPU comes from /proc (Linux); each window is a ``lanai bench`` run without warm-up.

    python benchmarks/cpu_per_request.py --rounds 4 --duration 4 --concurrency 16
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from lanai.bundled import DEFAULT_MODEL

from serving import Server, photo


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) of every thread of ``pid``, by thread id."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # the thread ended
            continue
        found[tid] = (int(fields[11]) + int(fields[12])) / ticks
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lanai-cpu-"))
    image = work / "chelsea.jpg"
    image.write_bytes(photo())
    server = Server(work / "home")
    pid, loop_tid = server.proc.pid, str(server.proc.pid)  # the main thread runs the event loop

    def bench(seconds: float) -> dict:
        cmd = [sys.executable, "-m", "lanai.cli", "bench", server.url, "--model", DEFAULT_MODEL, "--image", str(image),
               "-c", str(args.concurrency), "-d", str(seconds), "--warmup", "0", "--json"]  # fmt: skip
        return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)  # type: ignore[no-any-return]

    loop_ms, total_ms = [], []
    try:
        bench(1.0)
        for r in range(args.rounds):
            before = thread_cpu_s(pid)
            result = bench(args.duration)
            after = thread_cpu_s(pid)
            requests = result["throughput_rps"] * result["duration_s"]
            loop_ms.append((after[loop_tid] - before.get(loop_tid, 0.0)) / requests * 1e3)
            total_ms.append(sum(t - before.get(tid, 0.0) for tid, t in after.items()) / requests * 1e3)
            print(f"round {r + 1}: {result['throughput_rps']:.1f} req/s; CPU per request: event loop "
                  f"{loop_ms[-1]:.3f} ms, all threads {total_ms[-1]:.2f} ms", flush=True)  # fmt: skip
    finally:
        server.stop()
    print(f"medians: event loop {statistics.median(loop_ms):.3f} ms, all threads {statistics.median(total_ms):.2f} ms "
          "of CPU per request")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
