"""``lanai models …``: the store from the command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from lanai.config import Settings, load_settings
from lanai.errors import BadInput, ConfigError
from lanai.store import Manifest, Store
from lanai.tasks import TASKS, get_task
from lanai.types import BatchingConfig, ImagePreprocess

__all__ = ["run_models_command", "parse_preprocess"]

_PREPROCESS_HINT = (
    "e.g. --preprocess resize=256,crop=224,mean=127,std=128,layout=NCHW,dtype=float32,color=RGB"
    " (detectors: fit=letterbox|stretch, channel_order=RGB|BGR)"
)


def parse_preprocess(text: str) -> ImagePreprocess:
    """``resize=256,crop=224,mean=123.7:116.3:103.5,std=58.4:57.1:57.4,layout=NCHW,dtype=float32,color=RGB``
    (``color=L``: one grey channel)."""
    spec = ImagePreprocess()
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise BadInput(f"--preprocess item {item!r} has no '='.", hint=_PREPROCESS_HINT)
        try:
            spec = _apply(spec, key.strip(), value.strip())
        except ValueError:
            raise BadInput(f"--preprocess {key}={value!r} is not valid.", hint=_PREPROCESS_HINT) from None
    return spec


def _apply(spec: ImagePreprocess, key: str, value: str) -> ImagePreprocess:
    if key in ("resize", "crop"):
        number = int(value)
        if number < 1:
            raise ValueError(value)
        return replace(spec, resize=number) if key == "resize" else replace(spec, crop=number)
    if key in ("mean", "std"):
        numbers = [float(v) for v in value.split(":")]
        if len(numbers) == 1:
            numbers *= 3
        if len(numbers) != 3 or (key == "std" and min(numbers) <= 0):
            raise ValueError(value)
        triple = (numbers[0], numbers[1], numbers[2])
        return replace(spec, mean=triple) if key == "mean" else replace(spec, std=triple)
    if key == "layout" and value.upper() in ("NCHW", "NHWC"):
        return replace(spec, layout="NCHW" if value.upper() == "NCHW" else "NHWC")
    if key == "color" and value.upper() in ("RGB", "L"):
        return replace(spec, color="RGB" if value.upper() == "RGB" else "L")
    if key == "dtype" and value in ("float32", "uint8"):
        return replace(spec, dtype="float32" if value == "float32" else "uint8")
    if key == "fit" and value.lower() in ("crop", "letterbox", "stretch"):
        return replace(spec, fit=value.lower())  # type: ignore[arg-type]
    if key == "channel_order" and value.upper() in ("RGB", "BGR"):
        return replace(spec, channel_order="RGB" if value.upper() == "RGB" else "BGR")
    raise BadInput(f"unknown --preprocess setting {key}={value!r}.", hint=_PREPROCESS_HINT)


def parse_options(items: list[str]) -> dict[str, Any]:
    """``--option n_ctx=4096 --option providers=cuda,cpu``: numbers, booleans, comma lists and strings."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"--option {item!r} is not KEY=VALUE.", hint="e.g. --option n_ctx=4096")
        options[key.strip()] = _option_value(text.strip())
    return options


def _option_value(text: str) -> Any:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return [part.strip() for part in text.split(",")] if "," in text else text


def _add(store: Store, args: argparse.Namespace) -> int:
    from lanai.bundled import inspector

    given = {
        key: getattr(args, key)
        for key in ("max_batch_size", "max_queue_delay_us", "max_queue_size", "instances")
        if getattr(args, key) is not None
    }
    for key, value in given.items():
        if value < (0 if key in ("max_queue_delay_us", "instances") else 1):
            raise BadInput(f"--{key.replace('_', '-')} {value} is out of range.", hint="use a positive number.")
    batching = replace(BatchingConfig(), **given)
    preprocess = parse_preprocess(args.preprocess) if args.preprocess else None
    if args.task in ("classify", "embed-image") and preprocess is None:
        preprocess = ImagePreprocess()
    suffixes = {".gguf": "llamacpp", ".tflite": "litert", ".hef": "hailo"}
    backend = args.backend or suffixes.get(args.file.suffix.lower(), "onnx")
    if backend not in get_task(args.task).backends:
        pairs = "; ".join(f"{name} on {', '.join(t.backends)}" for name, t in TASKS.items())
        raise BadInput(f"task {args.task!r} does not go with backend {backend!r}.", hint=f"tasks run: {pairs}.")
    options = parse_options(args.option or [])
    if backend == "llamacpp":
        from lanai.backends.llamacpp import check_options

        check_options(options)
    if backend == "litert":  # model_edgetpu.tflite: record that it wants the Edge TPU delegate
        from lanai.backends.litert import edgetpu_options

        options = edgetpu_options(args.file.name, options)
    attachments, cleanup = _text_files(args, backend, options)
    if getattr(args, "stage", None) or getattr(get_task(args.task), "stages", ()):  # several files, one version
        return _add_staged(store, args, backend, batching, options)
    if args.task == "detect":
        preprocess = _detector(args, backend, options, preprocess)
    try:
        manifest = store.add(
            args.file,
            name=args.name,
            task=args.task,
            backend=backend,
            backend_options=options,
            labels=args.labels,
            preprocess=preprocess,
            batching=batching,
            provenance={"source_file": str(args.file.resolve())},
            inspect=inspector(backend, args.task),
            activate=True if args.activate else None,
            attachments=attachments,
        )
    finally:
        cleanup()
    active = store.active(manifest.name)
    state = "active" if active == manifest.version else f"not active (active: {active})"
    print(f"added {manifest.name} version {manifest.version}, {state}")
    return 0


def _detector(
    args: argparse.Namespace, backend: str, options: dict[str, Any], preprocess: ImagePreprocess | None
) -> ImagePreprocess:
    """Choose the detector's output decoder from its outputs (or check the one ``--option decoder=``
    names) and record it in ``options``; the preprocessing is its family's unless ``--preprocess`` says."""
    from lanai.bundled import inspector
    from lanai.store.labels import parse_labels
    from lanai.tasks.detection import choose_decoder

    _, outputs = inspector(backend, args.task)(args.file)
    classes = len(parse_labels(args.labels.read_bytes(), source=str(args.labels))) if args.labels else None
    decoder = choose_decoder(outputs, options, classes)
    settled = decoder.settle(outputs, classes, options)
    options.update(decoder=decoder.name, **settled)
    found = "".join(f", {name}={value}" for name, value in settled.items())
    print(f"detector outputs decoded as {decoder.name}{found}: {decoder.summary}")
    return preprocess or decoder.preprocess


def _add_staged(
    store: Store, args: argparse.Namespace, backend: str, batching: BatchingConfig, options: dict[str, Any]
) -> int:
    from lanai.staged_cli import add_staged, parse_stage_files

    manifest = add_staged(
        store, args.file, name=args.name, task_name=args.task, files=parse_stage_files(args.stage or []),
        backend=backend, batching=batching, backend_options=options, activate=True if args.activate else None,
    )  # fmt: skip
    return _added(store, manifest)


def _added(store: Store, manifest: Manifest) -> int:
    active = store.active(manifest.name)
    state = "active" if active == manifest.version else f"not active (active: {active})"
    print(f"added {manifest.name} version {manifest.version}, {state}")
    return 0


def _with_secret(files: dict[str, Path]) -> tuple[dict[str, Path], Callable[[], None]]:
    import secrets
    import tempfile

    folder = tempfile.TemporaryDirectory(prefix="lanai-secret-")
    path = Path(folder.name) / "secret"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(secrets.token_bytes(32))
    return {**files, "secret": path}, folder.cleanup


def _text_files(
    args: argparse.Namespace, backend: str, options: dict[str, Any]
) -> tuple[dict[str, Path], Callable[[], None]]:
    """A text model's files to keep with it: its tokenizer, and a few-shot head built from ``--examples``
    (by running the encoder on them here, before anything is stored)."""
    tokenizer, examples = getattr(args, "tokenizer", None), getattr(args, "examples", None)
    if args.task not in ("classify-text", "embed", "redact") or backend == "llamacpp":
        if tokenizer or examples:
            raise BadInput("--tokenizer and --examples are for ONNX text models.",
                           hint="use them with --task classify-text, embed or redact.")  # fmt: skip
        return {}, lambda: None
    if tokenizer is None:
        raise BadInput(f"a {args.task} model needs its tokenizer.", hint="add --tokenizer tokenizer.json.")
    if examples is not None and args.task != "classify-text":
        raise BadInput("--examples builds a classifier head.", hint="use it with --task classify-text.")
    if not tokenizer.is_file():
        raise BadInput(f"tokenizer file {tokenizer} does not exist.", hint="check the path.")
    files = {"tokenizer": tokenizer}
    if args.task == "redact":  # the key of its hash style: one per version, never shown
        return _with_secret(files)
    if examples is None:
        return files, lambda: None
    import tempfile

    from lanai.tasks.fewshot import build_head, embed_texts, read_examples

    if not examples.is_file():
        raise BadInput(f"examples file {examples} does not exist.", hint="check the path.")
    rows = read_examples(examples.read_bytes(), source=str(examples))
    vectors = embed_texts(args.file, tokenizer, options, [text for text, _ in rows])
    head = build_head(vectors, [label for _, label in rows])
    folder = tempfile.TemporaryDirectory(prefix="lanai-head-")
    path = Path(folder.name) / "head.json"
    path.write_bytes(head.to_json())
    print(head.summary())
    return {**files, "head": path}, folder.cleanup


def _list(store: Store, as_json: bool) -> int:
    summaries = store.list()
    if as_json:
        rows = [{"name": s.name, "active": s.active, "versions": list(s.versions), "task": s.task} for s in summaries]
        print(json.dumps(rows, indent=2))
        return 0
    if not summaries:
        print("no models yet: lanai models add FILE --name NAME --task classify")
        return 0
    print(f"{'NAME':<32} {'TASK':<10} {'ACTIVE':<7} VERSIONS")
    for s in summaries:
        active = "-" if s.active is None else str(s.active)
        print(f"{s.name:<32} {s.task:<10} {active:<7} {', '.join(map(str, s.versions))}")
    return 0


def _show(store: Store, manifest: Manifest) -> int:
    """The manifest, then the optimisation report attached to the version, if there is one."""
    sys.stdout.write(manifest.to_toml())
    if "head" in manifest.files:
        from lanai.tasks.fewshot import load_head

        sys.stdout.write("\n# " + load_head(store.file_path(manifest, "head")).summary() + "\n")
    if "report_md" in manifest.files:
        report = store.file_path(manifest, "report_md").read_text(encoding="utf-8")
        sys.stdout.write("\n" + report)
    return 0


def run_models_command(args: argparse.Namespace) -> int:
    settings = load_settings(cli={"home": args.home})
    store = Store(settings.home)
    if args.action == "add":
        return _add(store, args)
    if args.action == "add-ppocr":
        from lanai.staged_cli import add_ppocr

        return _added(store, add_ppocr(store, name=args.name, source=args.source, activate=args.activate or None))
    if args.action == "list":
        return _list(store, args.json)
    if args.action == "show":
        return _show(store, store.manifest(args.name, args.version))
    if args.action == "history":
        return _history(store, args.name, args.json)
    if args.action in ("activate", "rollback"):
        return _switch(settings, store, args)
    if args.action == "remove":
        store.remove(args.name, args.version)
        what = args.name if args.version is None else f"{args.name} version {args.version}"
        print(f"removed {what}")
    return 0


def _switch(settings: Settings, store: Store, args: argparse.Namespace) -> int:
    """``activate`` and ``rollback``: through the server running on this store when there is one (the
    store and the service change together, and a version that does not load changes neither), else in
    the store alone, which a server serves from when it starts."""
    from lanai.telemetry.lifecycle import running_url

    url = running_url(settings.home)
    if url is None:
        if args.action == "activate":
            store.activate(args.name, args.version)
            version = args.version
        else:
            version = store.rollback(args.name)
        print(f"{args.name}: version {version} is active (no server is running on {settings.home}: "
              "it serves this version when it starts)")  # fmt: skip
        return 0
    import httpx

    from lanai.admin_client import AdminClient, call
    from lanai.protocol.admin import ActivateResult

    path = f"/v1/admin/models/{quote(args.name, safe='')}/{args.action}"
    body = {"version": str(args.version)} if args.action == "activate" else None
    try:
        with AdminClient(settings, url) as (http, base):
            result = ActivateResult.from_dict(call(http, "POST", base + path, body))
    except httpx.TransportError as exc:
        raise ConfigError(
            f"the server running on this store ({url}) did not answer: {exc}.",
            hint="check that it is up (lanai doctor), or stop it and run this again to change the store alone.",
        ) from None
    was = f" (was version {result.previous})" if result.previous else ""
    print(f"{args.name}: version {result.version} is active and serving at {url}{was}")
    return 0


def _history(store: Store, name: str, as_json: bool) -> int:
    """The versions (created, where from, active now) and the fleet's events (pulled, verified, activated,
    refused, rolled back), oldest first."""
    from lanai.fleet.follow import history

    active = store.active(name)
    versions = [store.manifest(name, v) for v in store.versions(name)]
    events = history(store.root, name)
    if as_json:
        rows = {"active": active, "versions": [{"version": m.version, "created": m.created,
                "source": m.provenance.get("pulled_from") or m.provenance.get("source_file", "")} for m in versions],
                "events": events}  # fmt: skip
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{name}: version {active} is active" if active is not None else f"{name}: no active version")
    for m in versions:
        mark = "*" if m.version == active else " "
        source = m.provenance.get("pulled_from") or m.provenance.get("source_file") or m.provenance.get("source", "")
        print(f" {mark} {m.version:>3}  {m.created}  {source}")
    for event in events:
        version = f" version {event['version']}" if event.get("version") is not None else ""
        digest = f" {str(event['digest'])[:19]}" if event.get("digest") else ""
        reason = f": {event['reason']}" if event.get("reason") else ""
        print(f"{event['time']}  {event['event']}{version}{digest}{reason}")
    return 0
