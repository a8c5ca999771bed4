"""``lanai pipelines …``: pipeline files in the store, checked before they are put there."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lanai.config import load_settings
from lanai.errors import ConfigError
from lanai.pipelines import load_pipelines, read_pipeline
from lanai.store import validate_name
from lanai.store._fs import replace_atomic

__all__ = ["run_pipelines_command"]


def _folder(args: argparse.Namespace) -> Path:
    return Path(load_settings(cli={"home": args.home}).home) / "pipelines"


def _add(folder: Path, source: Path, name: str | None) -> int:
    name = name or source.stem
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {source}: {exc.strerror or exc}") from None
    pipeline = read_pipeline(name, text)  # checked before it goes anywhere near the store
    folder.mkdir(parents=True, exist_ok=True)
    # the temp file is named tmp-…, not *.toml, so a running server never reads it half-written
    replace_atomic(folder / f"{name}.toml", text.encode("utf-8"), staging=folder)
    steps = " → ".join(f"{s.name} ({s.model})" for s in pipeline.steps)
    print(f"added pipeline {name}: {steps}; a running server serves it at POST /v1/pipelines/{name}")
    return 0


def _list(folder: Path) -> int:
    pipelines, failed = load_pipelines(folder)
    if not pipelines and not failed:
        print(f"no pipelines yet: lanai pipelines add FILE.toml (they live in {folder})")
    for p in pipelines.values():
        print(f"{p.name:<24} " + " → ".join(f"{s.name} ({s.task} on {s.model})" for s in p.steps))
    for name, error in failed.items():
        print(f"{name:<24} NOT LOADED: {error}")
    return 1 if failed else 0


def _remove(folder: Path, name: str) -> int:
    path = folder / f"{validate_name(name, 'pipeline')}.toml"
    if not path.exists():
        raise ConfigError(f"no pipeline named {name!r}.", hint="lanai pipelines list shows them.")
    path.unlink()
    print(f"removed pipeline {name}")
    return 0


def run_pipelines_command(args: argparse.Namespace) -> int:
    folder = _folder(args)
    if args.action == "add":
        return _add(folder, args.file, args.name)
    if args.action == "list":
        return _list(folder)
    if args.action == "remove":
        return _remove(folder, args.name)
    print(f"unknown action {args.action}", file=sys.stderr)  # pragma: no cover - argparse refuses it first
    return 2
