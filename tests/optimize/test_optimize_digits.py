"""Digits, end to end: teacher → distilled student → pruned → INT8 → uint8 input, through the real
``lanai optimize`` command, then served by lanai and asked over HTTP about real digit images."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.store import Store

from support import ServerThread

Run = tuple[Path, Path, subprocess.CompletedProcess[str]]

MODELS = Path(__file__).resolve().parents[2] / "examples" / "digits" / "models.py"
GREY_8 = "resize=8,crop=8,mean=0,std=255,color=L"


def lanai(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lanai.cli", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def optimized(digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    home, out = tmp_path_factory.mktemp("home"), tmp_path_factory.mktemp("out")
    run = lanai(
        "optimize", "--home", home, "--name", "digits", "--model", f"{MODELS}:teacher",
        "--weights", digits / "teacher.pt", "--train", digits / "train.npz", "--val", digits / "val.npz",
        "--labels", digits / "labels.txt", "--distil", f"{MODELS}:student", "--distil-epochs", "30",
        "--prune", "0.5", "--prune-epochs", "15", "--quantize", "static", "--preprocess", GREY_8,
        "--fold-preprocess", "--activate", "--out", out, "--measure-seconds", "0.2",
    )  # fmt: skip
    return home, out, run


def test_the_pipeline_shrinks_the_model_4x_within_one_point(
    optimized: tuple[Path, Path, subprocess.CompletedProcess[str]],
) -> None:
    _, out, run = optimized
    assert run.returncode == 0, run.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "passed" and report["metric"] == "top1"
    steps = {s["step"]: s for s in report["steps"]}
    assert list(steps) == ["original", "distil", "prune", "quantize", "fold"]
    teacher, final = steps["original"], steps["fold"]
    assert teacher["accuracy"]["value"] >= 97.0  # a real, trained teacher
    assert teacher["speed"]["size_bytes"] >= 4 * final["speed"]["size_bytes"]
    assert final["accuracy"]["value"] >= teacher["accuracy"]["value"] - 1.0
    assert steps["prune"]["speed"]["parameters"] < steps["distil"]["speed"]["parameters"] * 0.5  # channels are gone
    assert (out / "model.onnx").stat().st_size == final["speed"]["size_bytes"]
    assert steps["quantize"]["notes"][0].startswith("calibration recipes tried, by validation top1: minmax:")
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| fold |" in run.stdout and "stored as digits version 1 (active)" in run.stdout


def test_the_report_is_kept_with_the_store_version(
    optimized: tuple[Path, Path, subprocess.CompletedProcess[str]],
) -> None:
    home, _, _ = optimized
    show = lanai("models", "--home", home, "show", "digits", "1")
    assert show.returncode == 0, show.stderr
    assert 'dtype = "uint8"' in show.stdout and 'color = "L"' in show.stdout
    assert "# lanai optimize: digits" in show.stdout and "| quantize |" in show.stdout


def test_the_optimised_model_is_served_and_reads_real_digits(optimized: Run, digits: Path) -> None:
    home, _, _ = optimized
    settings = Settings(home=home)
    images = sorted((digits / "val-images").glob("*/*.png"))[::4]  # 90 of the 360 validation digits
    with (
        ServerThread(DataPlane(Store(home), settings), settings) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        right = 0
        for image in images:
            answer = client.post("/v1/models/digits/classify", files={"file": image.read_bytes()})
            assert answer.status_code == 200, answer.text
            right += answer.json()["label"] == image.parent.name
    assert right / len(images) >= 0.97


def test_a_step_that_loses_too_much_stops_the_run_and_stores_nothing(digits: Path, tmp_path: Path) -> None:
    run = lanai(
        "optimize", "--home", tmp_path / "home", "--name", "digits", "--model", f"{MODELS}:teacher",
        "--weights", digits / "teacher.pt", "--train", digits / "train.npz", "--val", digits / "val.npz",
        "--prune", "0.9", "--prune-epochs", "1", "--prune-lr", "1e-6", "--quantize", "none",
        "--out", tmp_path / "out", "--measure-seconds", "0.1",
    )  # fmt: skip
    assert run.returncode == 1
    assert "error: prune: top1 fell from" in run.stderr and "--max-drop 1" in run.stderr
    assert "prune less" in run.stderr  # the hint
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["status"] == "failed" and [s["step"] for s in report["steps"]] == ["original", "prune"]
    assert not (tmp_path / "out" / "model.onnx").exists()
    assert Store(tmp_path / "home").list() == []
