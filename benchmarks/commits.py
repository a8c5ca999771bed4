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

from harness import Poster, arguments, face_off, start_server

from lanai.bundled import DEFAULT_MODEL, ensure_default_model
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
    template = work / "template"
    ensure_default_model(Store(template))
    image = photo()
    servers = []
    try:
        contenders = []
        path = f"/v1/models/{DEFAULT_MODEL}/classify"
        for n, commit in enumerate((args.after, args.before)):
            home = work / f"home{n}"
            shutil.copytree(template, home)
            os.environ["PYTHONPATH"] = str(export(commit, work / f"code{n}"))
            proc, url = start_server(home)
            servers.append(proc)
            poster = Poster(url)
            contenders.append((commit, lambda p=poster: p.post(path, image, "image/jpeg")))
        os.environ.pop("PYTHONPATH")
        face_off(contenders, args, "classify")
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
