"""Classify through two `lanai serve` processes whose stores differ only in the bundled model's [batching].

Each side gets a fresh store with the bundled model, its version manifest's [batching] lines rewritten
(``"max_batch_size=4"``, ``"instances=2,max_batch_size=8"``; ``""`` keeps the defaults); the harness's
closed-loop load runs against each in turn, alternating the order every round, and prints medians and
the ratio of the first side's rate to the second's.

    python benchmarks/batching.py max_batch_size=4 max_batch_size=8 --rounds 8 --duration 3
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from harness import arguments, classify_face_off

from lanai.bundled import DEFAULT_MODEL, ensure_default_model
from lanai.store import Store

from serving import photo


def make_store(home: Path, batching: str) -> None:
    """The bundled model in a new store at ``home``, with ``batching``'s KEY=VALUE pairs in its manifest."""
    ensure_default_model(Store(home))
    manifest = home / "models" / DEFAULT_MODEL / "versions" / "1.toml"
    for pair in filter(None, batching.split(",")):
        key, _, value = pair.partition("=")
        manifest.write_text(re.sub(rf"(?m)^{key} = .*$", f"{key} = {int(value)}", manifest.read_text()))


def main() -> int:
    parser = arguments(__doc__.splitlines()[0], duration=3.0)
    parser.add_argument("first")
    parser.add_argument("second")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lanai-batching-"))
    try:
        servers = []
        for n, batching in enumerate((args.first, args.second)):
            make_store(work / f"home{n}", batching)
            servers.append((batching or "default", work / f"home{n}", None))
        classify_face_off(servers, photo(), args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
