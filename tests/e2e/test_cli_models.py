"""``lanai models …`` through the real command-line entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lanai.cli import main


def lanai(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> tuple[int, str, str]:
    code = main(["models", "--home", str(home), *args])
    out, err = capsys.readouterr()
    return code, out, err


def listing(capsys: pytest.CaptureFixture[str], home: Path) -> list[dict]:
    code, out, _ = lanai(capsys, home, "list", "--json")
    assert code == 0
    return json.loads(out)


def test_add_list_activate_rollback_remove(
    tmp_path: Path, model_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    home, tiny, labels = tmp_path / "home", str(model_files["tiny"]), str(model_files["labels"])
    add = ("add", tiny, "--name", "tiny", "--task", "classify", "--labels", labels, "--preprocess", "resize=8,crop=8")
    assert lanai(capsys, home, *add)[0] == 0
    assert lanai(capsys, home, *add)[1].startswith("added tiny version 2, not active (active: 1)")
    assert listing(capsys, home) == [{"name": "tiny", "active": 1, "versions": [1, 2], "task": "classify"}]
    assert lanai(capsys, home, "activate", "tiny", "2")[0] == 0
    assert listing(capsys, home)[0]["active"] == 2
    code, out, _ = lanai(capsys, home, "show", "tiny")
    assert code == 0 and "crop = 8" in out and "version = 2" in out
    assert lanai(capsys, home, "rollback", "tiny")[1].startswith("tiny: version 1 is active (no server is running on")
    assert lanai(capsys, home, "remove", "tiny", "2")[0] == 0
    assert listing(capsys, home)[0]["versions"] == [1]
    assert lanai(capsys, home, "remove", "tiny")[0] == 0
    assert listing(capsys, home) == []


@pytest.mark.parametrize("name", ["../x", "A B", "", "-lead", "x" * 65])
def test_bad_names_are_refused_and_store_untouched(
    tmp_path: Path, model_files: dict[str, Path], capsys: pytest.CaptureFixture[str], name: str
) -> None:
    home = tmp_path / "home"
    code, _, err = lanai(capsys, home, "add", str(model_files["tiny"]), f"--name={name}", "--task", "classify")
    assert code == 1 and "error:" in err and "name" in err.lower()
    assert not (home / "models").exists() or not any((home / "models").iterdir())
    assert not (tmp_path / "x").exists()


def test_files_that_are_missing_or_do_not_load(
    tmp_path: Path, model_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07not really a protobuf" * 10)
    for args, words in [
        (("add", str(tmp_path / "missing.onnx"), "--name", "m", "--task", "classify"), "missing.onnx"),
        (
            (
                "add",
                str(model_files["tiny"]),
                "--name",
                "m",
                "--task",
                "classify",
                "--labels",
                str(tmp_path / "nol.txt"),
            ),
            "nol.txt",
        ),
        (("add", str(junk), "--name", "m", "--task", "classify"), "onnxruntime cannot load"),
        (
            ("add", str(model_files["tiny"]), "--name", "m", "--task", "classify", "--preprocess", "crop=big"),
            "preprocess",
        ),
    ]:
        code, _, err = lanai(capsys, home, *args)
        assert code == 1 and words in err, err
    assert listing(capsys, home) == []


def test_errors_for_unknown_versions(
    tmp_path: Path, model_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    lanai(capsys, home, "add", str(model_files["tiny"]), "--name", "tiny", "--task", "classify")
    assert lanai(capsys, home, "activate", "tiny", "5")[0] == 1
    assert lanai(capsys, home, "activate", "nope", "1")[0] == 1
    assert lanai(capsys, home, "rollback", "tiny")[0] == 1
    code, _, err = lanai(capsys, home, "remove", "tiny", "1")
    assert code == 1 and "active" in err


def test_a_gguf_file_is_added_on_llama_cpp_with_its_options(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp", reason="the llm extra is not installed: pip install -e '.[test]'")
    from support import write_tiny_gguf

    gguf = write_tiny_gguf(tmp_path / "tiny.gguf")
    home = tmp_path / "home"
    code, out, err = lanai(capsys, home, "add", str(gguf), "--name", "tiny", "--task", "chat",
                           "--option", "n_ctx=64", "--option", "parallel=2")  # fmt: skip
    assert code == 0, err
    code, out, _ = lanai(capsys, home, "show", "tiny")
    assert 'backend = "llamacpp"' in out and "n_ctx = 64" in out and "parallel = 2" in out
    code, _, err = lanai(capsys, home, "add", str(gguf), "--name", "t2", "--task", "chat", "--option", "oops")
    assert code == 1 and "--option 'oops' is not KEY=VALUE" in err
    code, _, err = lanai(capsys, home, "add", str(gguf), "--name", "t3", "--task", "classify")
    assert code == 1 and "task 'classify' does not go with backend 'llamacpp'" in err
