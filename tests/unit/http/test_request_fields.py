"""The table of request fields (``lanai.http.request_fields``): its rule, and the published schemas that
follow it."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from lanai.http.request_fields import ROUTES, RefusedField, check_fields
from lanai.protocol import ollama
from lanai.protocol.openai import ChatCompletionRequest, CompletionRequest, EmbeddingRequest


@pytest.mark.parametrize(("schema", "route"), [
    (ChatCompletionRequest, "POST /v1/chat/completions"),
    (CompletionRequest, "POST /v1/completions"),
    (EmbeddingRequest, "POST /v1/embeddings"),
    (ollama.OllamaChatRequest, "POST /api/chat"),
    (ollama.OllamaGenerateRequest, "POST /api/generate"),
    (ollama.OllamaEmbedRequest, "POST /api/embed"),
    (ollama.OllamaEmbeddingsRequest, "POST /api/embeddings"),
])  # fmt: skip
def test_the_published_request_schema_lists_what_the_route_accepts(schema: Any, route: str) -> None:
    accepted = {key for key, field in ROUTES[route].items() if field.kind != "refused"}
    assert {f.name for f in dataclasses.fields(schema)} == accepted


def test_each_kind_of_field() -> None:
    chat = "POST /v1/chat/completions"
    check_fields({"model": "m", "user": "u", "store": False, "audio": None, "stream": True}, chat)
    for body, param, words in (
        ({"store": True}, "store", "not supported"),
        ({"functions": []}, "functions", "not supported"),  # refused even when empty: it asks for the old form
        ({"user": 1}, "user", "must be a string"),
        ({"stream": "yes"}, "stream", "true or false"),
        ({"stream_options": {"include_usage": True, "extra": 1}}, "stream_options", "must be"),
        ({"temprature": 1}, "temprature", "Unrecognized request argument supplied: temprature"),
    ):
        with pytest.raises(RefusedField) as refusal:
            check_fields(body, chat)
        assert refusal.value.param == param and words in refusal.value.message


def test_a_field_of_another_route_is_named_with_its_route() -> None:
    with pytest.raises(RefusedField) as refusal:
        check_fields({"messages": []}, "POST /v1/completions")
    assert refusal.value.hint is not None and "POST /v1/chat/completions" in refusal.value.hint
