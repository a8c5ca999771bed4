"""Client and AsyncClient over scripted servers (httpx.MockTransport) on a fake clock: what goes on the
wire, how answers decode, and failover as the policy says. Every scenario runs on both clients."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest

from lanai.client import AsyncClient, Client, RetryPolicy, api, llm
from lanai.client.errors import BadInput, ConnectionFailed, ModelNotFound, Overloaded, ProtocolError
from lanai.protocol.infer import encode_infer_response, parse_infer_request
from lanai.protocol.openai import Usage
from lanai.types import InferResponse

A, B = "http://a:8000", "http://b:8000"
Reply = Callable[[httpx.Request], httpx.Response]
CLASSIFICATION = {
    "model": "m", "version": "1", "label": "cat", "score": 0.9,
    "predictions": [{"label": "cat", "index": 3, "score": 0.9}, {"label": "dog", "index": 1, "score": 0.1}],
    "timing": {"preprocess_ms": 1.0, "queue_ms": 0.0, "compute_ms": 2.0, "batch_size": 1, "total_ms": 3.5},
}  # fmt: skip


def ok(doc: Any = None, **kwargs: Any) -> Reply:
    return lambda request: httpx.Response(200, json=CLASSIFICATION if doc is None else doc, **kwargs)


def status(code: int, message: str = "no.", **headers: str) -> Reply:
    return lambda request: httpx.Response(code, json={"error": message}, headers=headers)


def fail(kind: type[httpx.TransportError]) -> Reply:
    def reply(request: httpx.Request) -> httpx.Response:
        raise kind("scripted failure", request=request)

    return reply


class Servers:
    """Scripted servers: each host answers its replies in turn (the last one repeats)."""

    def __init__(self, **script: list[Reply]) -> None:
        self.script = {f"http://{host}:8000": replies for host, replies in script.items()}
        self.log: list[tuple[str, str, str]] = []
        self.requests: list[httpx.Request] = []
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        server = f"{request.url.scheme}://{request.url.host}:{request.url.port}"
        self.log.append((server, request.method, request.url.path))
        self.requests.append(request)
        replies = self.script[server]
        return (replies.pop(0) if len(replies) > 1 else replies[0])(request)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)

    @property
    def servers(self) -> list[str]:
        return [server for server, _, _ in self.log]


def invoke(kind: str, servers: Servers, method: str, *args: Any, retry: RetryPolicy | None = None,
           urls: list[str] | None = None, **kwargs: Any) -> Any:  # fmt: skip
    """``client.method(*args, **kwargs)`` on a Client or an AsyncClient over ``servers``."""
    urls = urls or list(servers.script)
    transport = httpx.MockTransport(servers)
    options: dict[str, Any] = {"api_key": "k", "retry": retry, "clock": servers.clock}
    if kind == "sync":
        with Client(urls, transport=transport, sleep=servers.sleep, **options) as client:
            return getattr(client, method)(*args, **kwargs)

    async def main() -> Any:
        async with AsyncClient(urls, transport=transport, sleep=servers.asleep, **options) as client:
            return await getattr(client, method)(*args, **kwargs)

    return asyncio.run(main())


KINDS = pytest.mark.parametrize("kind", ["sync", "async"])


@KINDS
def test_classify_sends_the_raw_image_and_decodes_the_result(kind: str) -> None:
    servers = Servers(a=[ok()])
    result = invoke(kind, servers, "classify", "m", b"\xff\xd8jpeg", top_k=2)
    assert (result.label, result.predictions[1].label, result.timing.batch_size) == ("cat", "dog", 1)
    request = servers.requests[0]
    assert request.method == "POST" and request.url.path == "/v1/models/m/classify"
    assert request.url.params["top_k"] == "2" and request.content == b"\xff\xd8jpeg"
    assert request.headers["content-type"] == "application/octet-stream"
    assert request.headers["authorization"] == "Bearer k"
    assert request.headers["user-agent"].startswith("lanai-client/")


@KINDS
def test_infer_sends_binary_tensors_and_reads_them_back(kind: str) -> None:
    def model(request: httpx.Request) -> httpx.Response:
        header = request.headers.get("inference-header-content-length")
        parsed, binary, all_binary = parse_infer_request(request.content, None if header is None else int(header))
        doubled = {"y": parsed.inputs["x"] * 2}
        body, length = encode_infer_response(InferResponse("m", "1", doubled, parsed.id), binary, all_binary)
        headers = {} if length is None else {"Inference-Header-Content-Length": str(length)}
        return httpx.Response(200, content=body, headers=headers)

    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    for binary in (True, False):
        result = invoke(kind, Servers(a=[model]), "infer", "m", {"x": x}, binary=binary, version="1", request_id="9")
        np.testing.assert_array_equal(result.outputs["y"], x * 2)
        assert result.outputs["y"].dtype == np.float32 and result.id == "9"


@KINDS
def test_a_refused_connection_fails_over_to_the_next_server(kind: str) -> None:
    servers = Servers(a=[fail(httpx.ConnectError)], b=[ok()])
    assert invoke(kind, servers, "classify", "m", b"img").label == "cat"
    assert servers.servers == [A, B] and servers.sleeps == []


@KINDS
def test_load_is_not_sent_again_once_it_may_have_run(kind: str) -> None:
    servers = Servers(a=[fail(httpx.ReadError)], b=[ok({"name": "m", "load": True})])
    with pytest.raises(ConnectionFailed) as info:
        invoke(kind, servers, "load", "m")
    assert info.value.sent and servers.servers == [A]
    servers = Servers(a=[fail(httpx.ReadError)], b=[ok({"name": "m", "load": True})])
    assert invoke(kind, servers, "load", "m", retry_unsafe=True).load is True
    assert servers.servers == [A, B]


@KINDS
def test_inference_is_sent_again_after_a_reset_mid_answer(kind: str) -> None:
    servers = Servers(a=[fail(httpx.RemoteProtocolError)], b=[ok()])
    assert invoke(kind, servers, "classify", "m", b"img").label == "cat"
    assert servers.servers == [A, B]


@KINDS
def test_busy_answers_wait_for_retry_after(kind: str) -> None:
    servers = Servers(a=[status(503, "the queue is full.", **{"Retry-After": "2"}), ok()])
    assert invoke(kind, servers, "classify", "m", b"img").label == "cat"
    assert servers.sleeps == [2.0] and servers.servers == [A, A]


@KINDS
def test_a_busy_server_sends_the_retry_to_another_at_once(kind: str) -> None:
    servers = Servers(a=[status(429, **{"Retry-After": "5"})], b=[ok()])
    assert invoke(kind, servers, "classify", "m", b"img").label == "cat"
    assert servers.sleeps == [] and servers.servers == [A, B]


@KINDS
def test_giving_up_raises_the_last_error_within_the_deadline(kind: str) -> None:
    servers = Servers(a=[status(503, "the queue is full.", **{"Retry-After": "4"})])
    with pytest.raises(Overloaded, match="queue is full") as info:
        invoke(kind, servers, "classify", "m", b"img", retry=RetryPolicy(deadline=10))
    assert info.value.retry_after == 4.0 and servers.sleeps == [4.0, 4.0]
    servers = Servers(a=[fail(httpx.ConnectError)], b=[fail(httpx.ConnectError)])
    with pytest.raises(ConnectionFailed, match="cannot connect"):
        invoke(kind, servers, "classify", "m", b"img", retry=RetryPolicy(attempts=4))
    assert len(servers.log) == 4


@KINDS
def test_client_errors_are_not_retried(kind: str) -> None:
    servers = Servers(a=[status(400, "the image is corrupt. Hint: send a JPEG.")], b=[ok()])
    with pytest.raises(BadInput) as info:
        invoke(kind, servers, "classify", "m", b"img")
    assert info.value.hint == "send a JPEG." and servers.servers == [A]
    with pytest.raises(ModelNotFound):
        invoke(kind, Servers(a=[status(404, "no model named 'x' is loaded.")]), "classify", "x", b"img")


@KINDS
def test_health_and_readiness_are_answers_even_when_503(kind: str) -> None:
    assert invoke(kind, Servers(a=[status(503)]), "ready") is False
    assert invoke(kind, Servers(a=[ok({"ready": True})]), "ready") is True
    servers = Servers(a=[ok({"ready": True})], b=[status(503)])
    assert invoke(kind, servers, "ready", server=B) is False and servers.servers == [B]
    assert invoke(kind, Servers(a=[status(404)]), "model_ready", "m", "2") is False


@KINDS
def test_probe_asks_every_server(kind: str) -> None:
    servers = Servers(a=[fail(httpx.ConnectError)], b=[ok({"ready": True})])
    assert invoke(kind, servers, "probe") == {A: False, B: True}


@KINDS
def test_a_wrong_shape_is_a_protocol_error(kind: str) -> None:
    with pytest.raises(ProtocolError, match="not JSON"):
        invoke(kind, Servers(a=[lambda request: httpx.Response(200, content=b"<html>")]), "classify", "m", b"i")
    with pytest.raises(ProtocolError, match="Classification"):
        invoke(kind, Servers(a=[ok({"label": "cat"})]), "classify", "m", b"i")


def sse(*events: Any) -> Reply:
    text = "".join(f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events)
    return lambda request: httpx.Response(200, content=text.encode(), headers={"Content-Type": "text/event-stream"})


CHAT_STREAM = sse(
    {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
    {"choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]},
    {"choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]},
    {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}},
    "[DONE]",
)


def read_stream(kind: str, servers: Servers, method: str, *args: Any, **kwargs: Any) -> list[llm.Chunk]:
    transport = httpx.MockTransport(servers)
    if kind == "sync":
        with Client(list(servers.script), transport=transport, sleep=servers.sleep, clock=servers.clock) as client:
            with getattr(client, method)(*args, **kwargs) as stream:
                return list(stream)

    async def main() -> list[llm.Chunk]:
        async with AsyncClient(list(servers.script), transport=transport, sleep=servers.asleep) as client:
            async with await getattr(client, method)(*args, **kwargs) as stream:
                return [chunk async for chunk in stream]

    return asyncio.run(main())


@KINDS
def test_chat_streams_chunks_after_failing_over(kind: str) -> None:
    servers = Servers(a=[status(503, "queue full")], b=[CHAT_STREAM])
    chunks = read_stream(kind, servers, "chat_stream", "smol", "Hi", max_tokens=8)
    assert [c.text for c in chunks] == ["Hel", "lo", ""] and chunks[1].finish_reason == "stop"
    assert chunks[2].usage == Usage.of(4, 2, 0)
    body = json.loads(servers.requests[-1].content)
    assert body == {"model": "smol", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8,
                    "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip


@KINDS
def test_chat_and_embeddings_whole(kind: str) -> None:
    usage = {
        "prompt_tokens": 3,
        "completion_tokens": 1,
        "total_tokens": 4,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    choice = {"index": 0, "message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"}
    answer = {
        "id": "x",
        "object": "chat.completion",
        "created": 1,
        "model": "smol",
        "usage": usage,
        "choices": [choice],
    }
    completion = invoke(kind, Servers(a=[ok(answer)]), "chat", "smol", [{"role": "user", "content": "Hi"}])
    assert completion.choices[0].message.content == "Hi!" and completion.usage.completion_tokens == 1
    rows = np.array([[0.6, 0.8], [1.0, 0.0]], dtype=np.float32)
    data = [{"object": "embedding", "index": i, "embedding": base64.b64encode(r.tobytes()).decode()}
            for i, r in enumerate(rows)]  # fmt: skip
    doc = {"object": "list", "data": data[::-1], "model": "e", "usage": {"prompt_tokens": 5, "total_tokens": 5}}
    servers = Servers(a=[ok(doc)])
    result = invoke(kind, servers, "embeddings", "e", ["a", "b"])
    np.testing.assert_array_equal(result.vectors, rows)
    assert result.usage.prompt_tokens == 5
    assert json.loads(servers.requests[0].content)["encoding_format"] == "base64"


@KINDS
def test_models_are_the_servers_model_cards(kind: str) -> None:
    cards = {"object": "list", "data": [{"id": "smol", "object": "model", "created": 1, "owned_by": "lanai",
             "task": "chat"}]}  # fmt: skip
    assert [(m.id, m.task) for m in invoke(kind, Servers(a=[ok(cards)]), "models")] == [("smol", "chat")]


def test_both_clients_have_every_call() -> None:
    builders = [name for name in (*api.__all__, *llm.__all__) if name[0].islower()]
    for name in builders:
        assert getattr(Client, name).__doc__ == getattr(api if name in api.__all__ else llm, name).__doc__
        assert asyncio.iscoroutinefunction(getattr(AsyncClient, name)), name
    assert "top_k" in str(__import__("inspect").signature(Client.classify))


def test_importing_the_client_imports_none_of_the_server() -> None:
    code = (
        "import sys, lanai.client; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn', 'onnxruntime', 'PIL') "
        "or m.startswith(('lanai.dataplane', 'lanai.http', 'lanai.serve', 'lanai.backends', 'lanai.store'))]; "
        "print(','.join(bad))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert found.stdout.strip() == ""
