"""Time to first token with a long system prompt (read, kept in a slot, back from RAM, back from disk after a
restart), grammar-constrained decoding against free decoding, and models loaded on demand (the first
request's latency, memory with two models loaded and after they leave), through a real ``lanai serve``.

The model is the real SmolLM2-135M-Instruct (Q4_1); the system prompt is about 1,000 tokens of CPython's
LICENSE.txt. Rounds interleave the cases; medians are printed.

    python benchmarks/llm_features.py --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openai

from llm import smollm2
from serving import Server

LICENSE = Path(os.__file__).with_name("LICENSE.txt").read_text(encoding="utf-8")
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}, "city": {"type": "string"},
                   "hobbies": {"type": "array", "items": {"type": "string"}}},
    "required": ["name", "age", "city", "hobbies"],
    "additionalProperties": False,
}  # fmt: skip


def stream(client: openai.OpenAI, messages: list[dict], max_tokens: int, **extra: object) -> tuple[float, float, int]:
    """TTFT (s), decode tokens/s after the first token, completion tokens."""
    start = time.perf_counter()
    first = last = 0.0
    tokens = 0
    for chunk in client.chat.completions.create(model="smol", messages=messages, max_tokens=max_tokens,
                                                temperature=0, stream=True, stream_options={"include_usage": True},
                                                **extra):  # type: ignore[call-overload]  # fmt: skip
        if chunk.choices and chunk.choices[0].delta.content:
            last = time.perf_counter()
            first = first or last
        if chunk.usage:
            tokens = chunk.usage.completion_tokens
    return first - start, (tokens - 1) / (last - first) if last > first else 0.0, tokens


def system(part: int, question: str, round_: int = 0) -> list[dict]:
    """About 1,000 tokens of the text (parts 0-2), opened with the round's number so no round finds another's."""
    text = f"Document {round_}.\n" + LICENSE[part * 4200 : (part + 1) * 4200]
    return [{"role": "system", "content": text}, {"role": "user", "content": question}]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=96)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="lanai-llm-features-")) / "home"
    add = [sys.executable, "-m", "lanai.cli", "models", "--home", str(home), "add", str(smollm2()), "--name", "smol",
           "--task", "chat", "--option", "n_ctx=1536", "--option", "parallel=2"]  # fmt: skip
    subprocess.run(add, check=True, capture_output=True)
    ttft: dict[str, list[float]] = {"read": [], "slot": [], "ram": [], "disk": []}
    speed: dict[str, list[float]] = {"free": [], "json_schema": []}
    for r in range(args.rounds):
        part = 0
        server = Server(home)
        try:
            client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=600)
            ttft["read"].append(stream(client, system(part, "Who may use this?", r), 1)[0])
            ttft["slot"].append(stream(client, system(part, "Is it free?", r), 1)[0])
            for other in (1, 2):  # other long prompts take both slots
                stream(client, system(other, "Summarise.", r), 1)
            ttft["ram"].append(stream(client, system(part, "Can I change it?", r), 1)[0])
            ask = [{"role": "user", "content": f"({r}) Describe a person who lives in a European capital."}]
            speed["free"].append(stream(client, ask, args.max_tokens)[1])
            fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}
            speed["json_schema"].append(stream(client, ask, args.max_tokens, response_format=fmt)[1])
        finally:
            server.stop()
        server = Server(home)  # a restart: the caches were written at shutdown
        try:
            client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=600)
            ttft["disk"].append(stream(client, system(part, "Who wrote it?", r), 1)[0])
        finally:
            server.stop()
        print(f"round {r + 1}: TTFT " + ", ".join(f"{k} {v[-1] * 1e3:.0f} ms" for k, v in ttft.items())
              + " | decode " + ", ".join(f"{k} {v[-1]:.1f} tok/s" for k, v in speed.items()), flush=True)  # fmt: skip
    demand = on_demand(home, args.rounds)
    m = {k: statistics.median(v) for k, v in {**ttft, **speed, **demand}.items()}
    print(f"\nmedians over {args.rounds} rounds, SmolLM2-135M Q4_1, a ~1,000-token system prompt:")
    print(f"  TTFT read {m['read'] * 1e3:.0f} ms; kept in a slot {m['slot'] * 1e3:.0f} ms; back from RAM "
          f"{m['ram'] * 1e3:.0f} ms; after a restart, from disk {m['disk'] * 1e3:.0f} ms")  # fmt: skip
    print(f"  decode: free {m['free']:.1f} tok/s, JSON schema {m['json_schema']:.1f} tok/s = "
          f"{m['json_schema'] / m['free']:.2f}×")  # fmt: skip
    print(f"  on demand: first request {m['cold'] * 1e3:.0f} ms (load + answer) vs {m['warm'] * 1e3:.0f} ms loaded; "
          f"server RSS {m['rss_none']:.0f} MB with none loaded, {m['rss_two']:.0f} MB with two, "
          f"{m['rss_after']:.0f} MB after both left")  # fmt: skip
    return 0


def on_demand(home: Path, rounds: int) -> dict[str, list[float]]:
    """Two copies of the model that load on demand and leave after 2 s idle."""
    demand = home.parent / "demand"
    model = str(smollm2())
    for name in ("smol-a", "smol-b"):
        subprocess.run([sys.executable, "-m", "lanai.cli", "models", "--home", str(demand), "add", model, "--name",
                        name, "--task", "chat", "--option", "n_ctx=1024", "--option", "parallel=2"],
                       check=True, capture_output=True)  # fmt: skip
    (demand / "lanai.toml").write_text('[server]\nload_models = "demand"\nkeep_alive = "2s"\n', encoding="utf-8")
    rows: dict[str, list[float]] = {"cold": [], "warm": [], "rss_none": [], "rss_two": [], "rss_after": []}
    ask = [{"role": "user", "content": "Say hi."}]
    server = Server(demand)
    try:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=600)
        for _ in range(rounds):
            time.sleep(4)  # both have left
            rows["rss_none"].append(server.rss_mb())
            began = time.perf_counter()
            client.chat.completions.create(model="smol-a", messages=ask, max_tokens=1)
            rows["cold"].append(time.perf_counter() - began)
            began = time.perf_counter()
            client.chat.completions.create(model="smol-a", messages=ask, max_tokens=1)
            rows["warm"].append(time.perf_counter() - began)
            client.chat.completions.create(model="smol-b", messages=ask, max_tokens=1)
            rows["rss_two"].append(server.rss_mb())
            time.sleep(4)
            rows["rss_after"].append(server.rss_mb())
    finally:
        server.stop()
    return rows


if __name__ == "__main__":
    sys.exit(main())
