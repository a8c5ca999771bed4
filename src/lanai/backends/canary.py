"""A first load in a child process: a runtime that crashes on a model file kills the child, not the server.

ONNX Runtime, LiteRT and llama.cpp are C++ libraries. A damaged or hostile model file can make them crash
(a segfault, an ``abort()`` from a failed assertion, a division by zero) rather than raise, and a crash in
the server's own process would take every other model down with it. So the first time a model file is
loaded on a runtime, it is loaded — and run once on an input of its own shapes — in a child process first
(``python -m lanai.backends.canary``). A child that dies of a signal, or exits without saying it loaded,
becomes a :class:`ModelLoadError` that names the signal; a child that outlives the timeout is killed.

Errors the runtime *raises* are not the canary's business: the child reports them and the real load, in
process, raises its own (with the backend's hint) as it always has. Once a file has loaded cleanly on a
runtime, a small marker (``<store>/canary/<key>``; the key covers the file's digest, the backend, its
options, and the versions of lanai and the runtime) spares the next start the child's second or so.

The child also measures what a batch row costs in memory, where the model's rows have a fixed shape:
its resident size after a run of one row and after a run of two (``row_bytes`` in the marker; the
loader sizes batches with it, ``dataplane.batch_size``). A child process is the clean place to measure:
nothing else allocates there.

A plain child process (``subprocess``), not ``fork``: the server is multi-threaded, and a fork of it could
inherit locks held by other threads.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

from lanai.backends.base import BackendOptions
from lanai.errors import ModelLoadError

__all__ = ["check", "check_async", "checked", "remember", "row_bytes", "marks_dir"]

log = logging.getLogger(__name__)

# the distribution that carries each backend's runtime: an upgrade of it makes old markers moot
_RUNTIMES = {
    "onnx": ("onnxruntime",),
    "litert": ("ai-edge-litert", "tflite-runtime"),
    "llamacpp": ("llama-cpp-python",),
}
_LAST_WORDS = 600  # characters of the child's stderr quoted in the error
# ggml's abort otherwise attaches gdb to print a backtrace: seconds, and pages of noise for the error
_ENV = {**os.environ, "GGML_NO_BACKTRACE": "1"}


def marks_dir(home: Path) -> Path:
    """Where a store keeps its markers of files that loaded cleanly in a child."""
    return Path(home) / "canary"


def check(
    path: Path, backend: str, options: BackendOptions, *, timeout: float, what: str = "the model file"
) -> dict[str, Any]:
    """Load ``path`` on ``backend`` in a child process and run it once; raise ModelLoadError if the runtime
    crashed or hung there (``what`` names the model in the error). Errors the runtime raised are left for
    the caller's own load to report. Returns the child's report (``row_bytes`` when it measured it)."""
    with _scratch() as scratch:
        answer = scratch / "answer.json"
        try:
            done = subprocess.run(_command(path, backend, options, answer), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, env=_ENV, timeout=timeout, check=False)  # fmt: skip
        except subprocess.TimeoutExpired:
            raise _hung(what, backend, timeout) from None
        return _judge(what, path, backend, done.returncode, done.stderr, answer)


async def check_async(
    path: Path, backend: str, options: BackendOptions, *, timeout: float, what: str = "the model file"
) -> dict[str, Any]:
    """:func:`check` for the server's event loop: the child is killed if the load is given up or cancelled
    (a shutdown meanwhile), so no trial outlives the server."""
    with _scratch() as scratch:
        answer = scratch / "answer.json"
        child = await asyncio.create_subprocess_exec(
            *_command(path, backend, options, answer), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_ENV
        )
        try:
            _, stderr = await asyncio.wait_for(child.communicate(), timeout)
        except asyncio.TimeoutError:
            raise _hung(what, backend, timeout) from None
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
        assert child.returncode is not None
        return _judge(what, path, backend, child.returncode, stderr, answer)


_SCRATCH_PREFIX = "lanai-canary-"


@contextmanager
def _scratch() -> Iterator[Path]:
    """A temporary folder for one trial's answer, named after this process. A server killed mid-trial
    (SIGKILL, a power cut) cannot remove its folder; the next trial on the box removes those of processes
    that no longer run."""
    _remove_orphans(Path(tempfile.gettempdir()))
    with tempfile.TemporaryDirectory(prefix=f"{_SCRATCH_PREFIX}{os.getpid()}-") as scratch:
        yield Path(scratch)


def _remove_orphans(folder: Path) -> None:
    for leftover in folder.glob(f"{_SCRATCH_PREFIX}*-*"):
        pid = leftover.name[len(_SCRATCH_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, and not ours to judge
        return True
    return True


def _command(path: Path, backend: str, options: BackendOptions, answer: Path) -> list[str]:
    spec = {"path": str(path), "backend": backend, "options": asdict(options), "answer": str(answer)}
    return [sys.executable, "-m", "lanai.backends.canary", json.dumps(spec, default=list)]


def _hung(what: str, backend: str, timeout: float) -> ModelLoadError:
    return ModelLoadError(
        f"{what} did not load within {timeout:g} s on the {backend} runtime (its trial load in a child "
        "process was stopped).",
        hint="its runtime hung (a file on a stuck mount, a runtime bug), or the model needs longer: "
        "raise load_timeout_s.",
    )


def _judge(what: str, path: Path, backend: str, code: int, stderr: bytes, answer: Path) -> dict[str, Any]:
    reported = _read(answer)
    if code == 0 and reported is not None:
        if reported.get("error"):
            log.debug("trial load of %s raised (the real load will report it): %s", path, reported["error"])
        return reported
    raise ModelLoadError(
        f"the {backend} runtime crashed loading {what} ({_death(code)}); nothing else was affected: it was "
        f"loaded in a child process first.{_last_words(stderr)}",
        hint="the file is damaged, or made for another version of the runtime: export or download it again, "
        "and check it with the tool that made it.",
    )


def checked(home: Path, sha256: str, backend: str, options: BackendOptions) -> bool:
    """Whether this file already loaded cleanly in a child on this runtime, with these options."""
    return (marks_dir(home) / _key(sha256, backend, options)).is_file()


def remember(
    home: Path, sha256: str, backend: str, options: BackendOptions, report: dict[str, Any] | None = None
) -> None:
    """Note that the file loaded cleanly in a child, with what it measured there (``report``'s
    ``row_bytes``); a store that cannot be written to just probes again."""
    folder = marks_dir(home)
    measured = {"row_bytes": report["row_bytes"]} if report and isinstance(report.get("row_bytes"), int) else {}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        descriptor = json.dumps({**_descriptor(sha256, backend, options), **measured}, indent=1, sort_keys=True)
        temporary = folder / f".{_key(sha256, backend, options)}.{os.getpid()}.tmp"
        temporary.write_text(descriptor + "\n", encoding="utf-8")
        os.replace(temporary, folder / _key(sha256, backend, options))
    except OSError as exc:
        log.debug("could not remember the trial load of %s: %s", sha256, exc)


def row_bytes(home: Path, sha256: str, backend: str, options: BackendOptions) -> int | None:
    """The memory one more batch row took in the child's runs of this file, if it was measured."""
    marker = _read(marks_dir(home) / _key(sha256, backend, options))
    value = None if marker is None else marker.get("row_bytes")
    return value if isinstance(value, int) else None


def _key(sha256: str, backend: str, options: BackendOptions) -> str:
    text = json.dumps(_descriptor(sha256, backend, options), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _descriptor(sha256: str, backend: str, options: BackendOptions) -> dict[str, Any]:
    return {"sha256": sha256, "backend": backend, "options": asdict(options), "lanai": _version("lanai"),
            "runtime": [_version(name) for name in _RUNTIMES.get(backend, ())]}  # fmt: skip


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _read(answer: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(answer.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _death(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}" if code else "it exited without saying it had loaded"


def _last_words(stderr: bytes) -> str:
    text = stderr.decode("utf-8", "replace").strip()
    if not text:
        return ""
    if len(text) > _LAST_WORDS:
        text = "…" + text[-_LAST_WORDS:]
    return f" Its last words: {text}"


def _trial(spec: dict[str, Any]) -> dict[str, Any]:
    """In the child: load the file and run it once. A Python error is reported, not raised."""
    from lanai.backends import backend_class

    fields = {f.name for f in dataclasses.fields(BackendOptions)}
    given = {k: v for k, v in spec["options"].items() if k in fields}
    options = BackendOptions(**{**given, "providers": tuple(given.get("providers", ("cpu",)))})
    try:
        loaded = backend_class(spec["backend"]).load(Path(spec["path"]), options)
    except Exception as exc:  # the real load will raise this again, with its hint
        return {"loaded": False, "error": f"{type(exc).__name__}: {exc}"}
    try:
        _run_once(loaded)
        measured = _row_bytes(loaded)
        return {"loaded": True} if measured is None else {"loaded": True, "row_bytes": measured}
    except Exception as exc:  # a model that rejects a made-up input is not a crash
        return {"loaded": True, "error": f"trial run: {type(exc).__name__}: {exc}"}
    finally:
        loaded.close()


def _run_once(loaded: Any) -> None:
    """One inference on zeros of the model's own shapes (tensor models), or one decoded token."""
    import numpy as np

    from lanai.types import dtype_of

    if hasattr(loaded, "inputs"):
        feeds = {}
        for spec in loaded.inputs:
            shape = [d if d > 0 else (1 if i == 0 else 32) for i, d in enumerate(spec.shape)]
            dtype = dtype_of(spec.datatype)
            feeds[spec.name] = np.full(shape, b"", dtype=object) if dtype.kind == "O" else np.zeros(shape, dtype)
        loaded.run(feeds)
        return
    from lanai.backends.base import BatchEntry, Sampling

    tokens = loaded.tokenize("Hello") or [0]
    loaded.start(0, Sampling(temperature=0.0))
    loaded.decode([BatchEntry(seq=0, tokens=tokens, pos=0, logits=True)])
    loaded.release(0)


def _row_bytes(loaded: Any) -> int | None:
    """The resident memory a run of two rows takes beyond a run of one (after ``_run_once``'s run of one),
    for a tensor model whose inputs take batches of rows of one fixed shape; None for others."""
    import numpy as np
    import psutil

    from lanai.types import dtype_of

    inputs = getattr(loaded, "inputs", None)
    if not inputs or getattr(loaded, "max_batch_size", 0) == 1:
        return None
    if any(spec.shape[:1] != (-1,) or min(spec.shape[1:], default=1) < 1 for spec in inputs):
        return None
    if any(dtype_of(spec.datatype).kind == "O" for spec in inputs):
        return None
    process = psutil.Process()
    one = process.memory_info().rss
    loaded.run({spec.name: np.zeros((2, *spec.shape[1:]), dtype_of(spec.datatype)) for spec in inputs})
    return max(0, process.memory_info().rss - one)


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    answer = _trial(spec)
    Path(spec["answer"]).write_text(json.dumps(answer), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
