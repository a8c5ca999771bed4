"""No request field is accepted and ignored (issue 16): each is honoured, accepted as metadata that asks
nothing of the answer, or refused with a 400 naming it; wrong types and unknown keys are 400s too. And
llama.cpp's flash attention is a model option, shown in the model's metadata.

The model is a tiny random-weight GGUF (token 2 is its end token): its answers are gibberish, but they
run through the real server and llama.cpp.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lanai.bundled import inspector
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.store import Store

from support import ServerThread, write_tiny_gguf

openai = pytest.importorskip("openai", reason="the test extra installs openai: pip install -e '.[test]'")
llama_cpp = pytest.importorskip("llama_cpp", reason="the llm extra is not installed: pip install -e '.[test]'")

END = "2"  # the tiny model's end-of-generation token
CHAT = "/v1/chat/completions"
TEXT = "/v1/completions"
BASE: dict[str, dict[str, Any]] = {
    CHAT: {"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "temperature": 0},
    TEXT: {"model": "tiny", "prompt": "abc", "max_tokens": 3, "temperature": 0},
    "/v1/embeddings": {"model": "tiny-embed", "input": "abc"},
    "/v1/messages": {"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3},
}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("params")
    tiny = write_tiny_gguf(root / "tiny.gguf")
    store = Store(root / "store")
    for name, task, options in (
        ("tiny", "completion", {"n_ctx": 128, "parallel": 2}),
        ("tiny-chat", "chat", {"n_ctx": 128, "parallel": 1}),
        ("tiny-embed", "embed", {"n_ctx": 64}),
        ("tiny-no-flash", "completion", {"n_ctx": 64, "parallel": 1, "flash_attn": "off"}),
    ):
        store.add(tiny, name=name, task=task, backend="llamacpp", backend_options=options,
                  inspect=inspector("llamacpp"))  # fmt: skip
    settings = Settings(home=store.root)
    with ServerThread(DataPlane(store, settings), settings) as address:
        yield address


@pytest.fixture(scope="module")
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=60) as client:
        yield client


def post(http: httpx.Client, route: str, **fields: Any) -> httpx.Response:
    return http.post(route, json={**BASE[route], **fields})


def refused(response: httpx.Response, field: str) -> str:
    """The error's message, after checking that the answer is a 400 naming ``field``."""
    assert response.status_code == 400, response.text
    body = response.json()
    error = body["error"]
    if body.get("type") != "error":  # OpenAI's shape names the field as param too
        assert error["param"] == field
    assert field in error["message"]
    return str(error["message"])


# -- honoured ---------------------------------------------------------------------------------------


def test_ignore_eos_generates_max_tokens_where_the_model_would_end(http: httpx.Client) -> None:
    ending = post(http, TEXT, max_tokens=8, logit_bias={END: 100}).json()
    assert ending["choices"][0]["finish_reason"] == "stop" and ending["usage"]["completion_tokens"] == 1
    ignored = post(http, TEXT, max_tokens=8, logit_bias={END: 100}, ignore_eos=True).json()
    assert ignored["choices"][0]["finish_reason"] == "length" and ignored["usage"]["completion_tokens"] == 8


def test_min_tokens_holds_the_end_back_that_long(http: httpx.Client) -> None:
    answer = post(http, TEXT, max_tokens=8, logit_bias={END: 100}, min_tokens=3).json()
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"]["completion_tokens"] == 4 and len(answer["choices"][0]["text"]) >= 3  # 3, then the end
    chat = post(http, CHAT, max_tokens=8, logit_bias={END: 100}, min_tokens=2, n=2).json()
    assert [c["finish_reason"] for c in chat["choices"]] == ["stop", "stop"]
    assert chat["usage"]["completion_tokens"] == 2 * 3


def test_min_tokens_above_max_tokens_is_refused(http: httpx.Client) -> None:
    assert "max_tokens" in refused(post(http, TEXT, max_tokens=2, min_tokens=5), "min_tokens")


@pytest.mark.parametrize("route", [CHAT, TEXT])
def test_llama_cpp_sampling_extensions_are_honoured(http: httpx.Client, route: str) -> None:
    greedy = post(http, route, max_tokens=6).json()["choices"][0]
    banned = post(http, route, max_tokens=6, top_k=3, min_p=0.05, repeat_penalty=1.3, keep_alive="5m",
                  logit_bias={str(t): -100 for t in range(3, 200)}).json()["choices"][0]  # fmt: skip
    assert greedy != banned  # the bytes tokens are banned: a different answer


@pytest.mark.parametrize("route", [CHAT, TEXT])
def test_typical_p_and_mirostat_are_honoured(http: httpx.Client, route: str) -> None:
    """Each narrows the draw so far that the seed no longer matters: typical_p near 0 keeps one token, and
    Mirostat aiming at almost no surprise keeps the likeliest (the greedy answer). Without them, seeds
    differ at temperature 1.5."""
    hot = {"max_tokens": 12, "temperature": 1.5, "ignore_eos": True}

    def text(**fields: Any) -> str:
        answer = post(http, route, **{**hot, **fields})
        assert answer.status_code == 200, answer.text
        choice = answer.json()["choices"][0]
        return str(choice["message"]["content"] if route == CHAT else choice["text"])

    assert len({text(seed=s) for s in range(4)}) > 1
    assert len({text(seed=s, typical_p=1e-6) for s in range(4)}) == 1
    # Mirostat 2.0 keeps only the tokens less surprising than its target: with a target of 0, the likeliest
    still = {text(seed=s, mirostat=2, mirostat_tau=0.0, mirostat_eta=0.0) for s in range(3)}
    assert still == {text(temperature=0)}
    # Mirostat (1) sizes its top-k from the surprise it sees: seeded, it answers the same twice
    assert text(seed=7, mirostat=1, mirostat_tau=3.0) == text(seed=7, mirostat=1, mirostat_tau=3.0)
    for field, value in (("mirostat", 3), ("typical_p", 1.5), ("mirostat_eta", -1)):
        refused(post(http, route, **{field: value}), field)


# -- accepted, asking nothing of the answer ----------------------------------------------------------


@pytest.mark.parametrize(("route", "fields"), [
    (CHAT, {"user": "u-1", "metadata": {"app": "x"}, "store": False, "service_tier": "auto",
            "prompt_cache_key": "k", "safety_identifier": "s", "modalities": ["text"], "cache_prompt": True,
            "stream_options": None, "parallel_tool_calls": True}),
    (TEXT, {"user": "u-1", "echo": False, "best_of": 1, "suffix": "", "service_tier": "default"}),
    ("/v1/embeddings", {"user": "u-1", "encoding_format": "float"}),
    ("/v1/messages", {"metadata": {"user_id": "u-1"}, "service_tier": "auto", "top_k": 5}),
])  # fmt: skip
def test_harmless_fields_are_accepted(http: httpx.Client, route: str, fields: dict[str, Any]) -> None:
    response = post(http, route, **fields)
    assert response.status_code == 200, response.text


# -- refused by name ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("route", "field", "value"), [
    (CHAT, "audio", {"voice": "alloy", "format": "mp3"}),
    (CHAT, "prediction", {"type": "content", "content": "x"}),
    (CHAT, "web_search_options", {}),
    (CHAT, "reasoning_effort", "low"),
    (CHAT, "verbosity", "low"),
    (CHAT, "functions", [{"name": "f"}]),
    (CHAT, "function_call", "auto"),
    (CHAT, "modalities", ["text", "audio"]),
    (CHAT, "store", True),
    (CHAT, "service_tier", "flex"),
    (CHAT, "grammar", 'root ::= "a"'),
    (CHAT, "n_probs", 3),
    (CHAT, "cache_prompt", False),
    (TEXT, "echo", True),
    (TEXT, "suffix", "end"),
    (TEXT, "best_of", 2),
    ("/v1/messages", "container", "c-1"),
    ("/v1/messages", "mcp_servers", [{"type": "url", "url": "http://x", "name": "x"}]),
    ("/v1/messages", "thinking", {"type": "enabled", "budget_tokens": 1024}),
])  # fmt: skip
def test_unsupported_fields_are_refused_by_name(http: httpx.Client, route: str, field: str, value: Any) -> None:
    message = refused(post(http, route, **{field: value}), field)
    assert "not supported" in message


@pytest.mark.parametrize("route", list(BASE))
def test_an_unknown_key_is_refused_by_name(http: httpx.Client, route: str) -> None:
    message = refused(post(http, route, temprature=0.5), "temprature")
    assert "Unrecognized request argument" in message


def test_a_field_of_another_route_says_where_it_belongs(http: httpx.Client) -> None:
    response = post(http, TEXT, top_logprobs=2)
    refused(response, "top_logprobs")
    assert "/v1/chat/completions" in response.json()["error"]["message"]


# -- wrong types ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("route", "field", "value"), [
    (CHAT, "logit_bias", "garbage"),
    (CHAT, "stream", "yes"),
    (CHAT, "stream_options", "x"),
    (CHAT, "stream_options", {"include_usage": "yes"}),
    (CHAT, "ignore_eos", "x"),
    (CHAT, "min_tokens", "x"),
    (CHAT, "top_k", "x"),
    (CHAT, "repeat_penalty", "x"),
    (CHAT, "max_completion_tokens", "x"),
    (CHAT, "user", 5),
    (CHAT, "metadata", "x"),
    (CHAT, "prompt_cache_key", 5),
    (CHAT, "logprobs", "x"),
    (CHAT, "tools", "x"),
    (TEXT, "logit_bias", {"a": 1}),
    (TEXT, "stream", 1),
    (TEXT, "logprobs", True),
    ("/v1/embeddings", "user", 5),
    ("/v1/embeddings", "dimensions", "x"),
    ("/v1/messages", "metadata", "x"),
    ("/v1/messages", "top_k", "x"),
])  # fmt: skip
def test_a_wrong_type_is_a_400_naming_the_field(http: httpx.Client, route: str, field: str, value: Any) -> None:
    refused(post(http, route, **{field: value}), field)


def test_null_counts_as_left_out(http: httpx.Client) -> None:
    response = post(http, CHAT, audio=None, functions=None, user=None, top_k=None)
    assert response.status_code == 200, response.text


# -- the official client --------------------------------------------------------------------------------


def test_the_openai_client_works_with_its_own_fields_and_extra_body(url: str) -> None:
    with openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60) as client:
        chat = client.chat.completions.create(
            model="tiny-chat", messages=[{"role": "user", "content": "hi"}], max_completion_tokens=4,
            temperature=0, seed=1, user="u-1", stop=["zz"], presence_penalty=0.1, logprobs=True, top_logprobs=2,
            extra_body={"top_k": 5, "ignore_eos": True},
        )  # fmt: skip
        assert chat.choices[0].finish_reason == "length" and chat.usage.completion_tokens == 4
        text = client.completions.create(model="tiny", prompt="abc", max_tokens=3, user="u-1", echo=False)
        assert text.usage.completion_tokens <= 3
        vectors = client.embeddings.create(model="tiny-embed", input=["abc", "de"], user="u-1")
        assert len(vectors.data) == 2
        streamed = client.chat.completions.create(
            model="tiny-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=3, stream=True,
            stream_options={"include_usage": True},
        )  # fmt: skip
        assert list(streamed)[-1].usage is not None
        with pytest.raises(openai.BadRequestError) as refusal:
            client.chat.completions.create(model="tiny-chat", messages=[{"role": "user", "content": "hi"}],
                                           extra_body={"n_probs": 2})  # fmt: skip
        assert refusal.value.param == "n_probs"  # type: ignore[attr-defined]


# -- flash attention --------------------------------------------------------------------------------------


def test_flash_attention_is_shown_in_the_models_metadata(http: httpx.Client) -> None:
    providers = {m["name"]: m["execution_provider"] for m in http.get("/health").json()["models"]}
    assert "flash attention off" in providers["tiny-no-flash"]
    assert "flash attention auto" in providers["tiny"]
    meta = http.get("/v2/models/tiny-no-flash").json()
    assert "flash attention off" in meta["parameters"]["execution_provider"]


@pytest.mark.parametrize(("given", "wanted"), [("on", 1), ("off", 0), ("auto", -1), (False, 0)])
def test_flash_attention_reaches_llama_cpp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: Any,
                                           wanted: int) -> None:  # fmt: skip
    from lanai.backends.base import BackendOptions
    from lanai.backends.llamacpp import LlamaCppBackend

    seen: list[int] = []
    make = llama_cpp.llama_init_from_model

    def spy(model: Any, params: Any) -> Any:
        seen.append(params.flash_attn_type)
        return make(model, params)

    monkeypatch.setattr(llama_cpp, "llama_init_from_model", spy)
    options = BackendOptions(extra={"n_ctx": 64, "parallel": 1, "flash_attn": given})
    backend = LlamaCppBackend.load(write_tiny_gguf(tmp_path / "tiny.gguf"), options)
    try:
        assert seen == [wanted] and backend.options.flash_attn in ("on", "off", "auto")
    finally:
        backend.close()


def test_a_bad_flash_attention_setting_is_refused_at_models_add(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lanai.cli import main

    path = write_tiny_gguf(tmp_path / "tiny.gguf")
    code = main(["models", "--home", str(tmp_path / "home"), "add", str(path), "--name", "t", "--task",
                 "completion", "--option", "flash_attn=sometimes"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "flash_attn='sometimes'" in err and "auto, on or off" in err
    code = main(["models", "--home", str(tmp_path / "home"), "add", str(path), "--name", "t", "--task",
                 "completion", "--option", "flash_attn=off", "--option", "n_ctx=64"])  # fmt: skip
    assert code == 0
    manifest = Store(tmp_path / "home").list()[0]
    assert manifest.name == "t"
