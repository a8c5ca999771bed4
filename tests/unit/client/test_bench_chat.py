"""``lanai bench --chat`` on lanai.client: streams read, tokens counted, failures counted and not retried."""

from __future__ import annotations

import asyncio
import json

import httpx

from lanai.bench.chat import ChatBenchConfig, run_chat


def stream_reply(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    assert body["stream"] and body["stream_options"] == {"include_usage": True} and body["max_tokens"] == 3
    events = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
        *({"choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]} for t in ("a", "b")),
        {"choices": [{"index": 0, "delta": {"content": "c"}, "finish_reason": "length"}]},
        {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}},
    ]
    text = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    return httpx.Response(200, content=text.encode(), headers={"Content-Type": "text/event-stream"})


def test_streams_are_timed_and_counted() -> None:
    config = ChatBenchConfig("http://box:8000", "smol", max_tokens=3, concurrency=2, requests=6)
    result = asyncio.run(run_chat(config, transport=httpx.MockTransport(stream_reply)))
    assert result.ok and len(result.streams) == 6
    summary = result.to_dict()
    assert summary["completion_tokens"] == 18 and summary["requests"] == 6 and summary["errors"] == 0
    assert all(s.tokens == 3 and s.ttft_s >= 0 for s in result.streams)


def test_failures_are_counted_not_retried() -> None:
    calls = []

    def busy(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503, json={"error": "the queue is full. Hint: retry."}, headers={"Retry-After": "1"})

    config = ChatBenchConfig("http://box:8000", "smol", max_tokens=3, concurrency=2, requests=4)
    result = asyncio.run(run_chat(config, transport=httpx.MockTransport(busy)))
    assert not result.ok and len(result.errors) == 4 and len(calls) == 4
    assert result.errors[0] == "Overloaded: the queue is full. Hint: retry."
