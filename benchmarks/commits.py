"""Classify through `lanai serve` at two commits, side by side: did a change cost the hot path anything?

Each commit is exported (``git archive``) to a folder and served from its own ``src`` (``PYTHONPATH``) in
the same environment, on a copy of one store (the bundled model); the harness's closed-loop load runs
against each in turn, alternating the order every round, and prints medians and the ratio of the second
commit's rate to the first's.

    python benchmarks/commits.py 65377b2 HEAD --rounds 6 --duration 3 --concurrency 1 16
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from harness import arguments, classify_face_off

from lanai.bundled import ensure_default_model
from lanai.store import Store

from serving import photo

ROOT = Path(__file__).resolve().parents[1]


def export(commit: str, folder: Path) -> Path:
    """The ``src`` folder of ``commit``, written into ``folder``."""
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "src"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder / "src"


def main() -> int:
    parser = arguments(__doc__.splitlines()[0], duration=3.0)
    parser.add_argument("before")
    parser.add_argument("after")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lanai-commits-"))
    try:
        template = work / "template"
        ensure_default_model(Store(template))
        servers = []
        for n, commit in enumerate((args.after, args.before)):
            shutil.copytree(template, work / f"home{n}")
            code = export(commit, work / f"code{n}")
            servers.append((commit, work / f"home{n}", {"PYTHONPATH": str(code)}))
        classify_face_off(servers, photo(), args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
