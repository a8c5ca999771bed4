"""A separate process that writes to a store, for the multi-process and crash tests.

    python store_worker.py adds  ROOT NAME COUNT TAG   # print "ready", wait for a line, COUNT adds
    python store_worker.py crash ROOT NAME             # adds/activates/rollbacks until killed

Not a test module: the tests start it with subprocess.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

from lanai.errors import StoreError
from lanai.store import Store
from lanai.types import TensorSpec

Specs = tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]


def quick_inspect(path: Path) -> Specs:
    with path.open("rb") as stream:
        assert stream.read(10) == b"fake-model"
    return (TensorSpec("input", "FP32", (-1, 4)),), (TensorSpec("logits", "FP32", (-1, 2)),)


def slow_inspect(path: Path) -> Specs:
    time.sleep(random.uniform(0, 0.01))
    return quick_inspect(path)


def write_model(directory: Path, tag: str, size: int) -> Path:
    path = directory / f"{tag}.onnx"
    path.write_bytes(b"fake-model " + tag.encode() + b"\n" + random.randbytes(size))
    return path


def adds(store: Store, name: str, count: int, tag: str, scratch: Path) -> None:
    paths = [write_model(scratch, f"{tag}-{i}", 1024) for i in range(count)]
    print("ready", flush=True)
    sys.stdin.readline()
    for i, path in enumerate(paths):
        provenance = {"writer": tag, "i": i}
        store.add(path, name=name, task="classify", inspect=quick_inspect, provenance=provenance)


def crash(store: Store, name: str, scratch: Path) -> None:
    for i in range(1_000_000):
        path = write_model(scratch, f"crash-{i}", random.choice([1 << 10, 1 << 20, 4 << 20]))
        store.add(path, name=name, task="classify", inspect=slow_inspect, activate=i % 2 == 0)
        path.unlink()
        if i == 0:
            print("ready", flush=True)
        try:
            if random.random() < 0.5:
                store.activate(name, random.choice(store.versions(name)))
            else:
                store.rollback(name)
        except StoreError:
            pass  # nothing to roll back to


def main(argv: list[str]) -> None:
    mode, root, name = argv[:3]
    store = Store(Path(root))
    # beside the store, in the test's own tmp_path: a killed worker leaves nothing in the system's /tmp
    with tempfile.TemporaryDirectory(dir=Path(root).parent) as scratch:
        if mode == "adds":
            adds(store, name, int(argv[3]), argv[4], Path(scratch))
        else:
            crash(store, name, Path(scratch))


if __name__ == "__main__":
    main(sys.argv[1:])
