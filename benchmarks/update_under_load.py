"""A box following a channel takes a new version while 16 clients keep classifying: requests served and
failed, and latency, before, during and after the activation.

The box is `lanai serve` (bundled EfficientNet-Lite0) following `REGISTRY/models/classifier:stable` in a
docker-registry on loopback (Debian's package), polling every 0.5 s. The load is `--concurrency` clients
posting scikit-image's chelsea to /v1/models/efficientnet-lite0/classify without pause. After `--before`
seconds a new version (the same weights, so its golden input passes) is pushed; the script reports when
it began to answer, and the outcome of every request in three windows: before the push, from the push
until `--after` seconds past the first answer of the new version, and the rest.

    python benchmarks/update_under_load.py --concurrency 16 --before 8 --after 8
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from PIL import Image
from skimage import data

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from harness import Poster  # noqa: E402
from oci_registry import start_registry, stop_registry  # noqa: E402

from lanai.bundled import DEFAULT_MODEL, DEFAULT_PREPROCESS, bundled_model_dir, ensure_default_model, inspector  # noqa: E402,E501
from lanai.config import Settings  # noqa: E402
from lanai.fleet.artifact import push  # noqa: E402
from lanai.fleet.follow import Follow, write_follow_entries  # noqa: E402
from lanai.fleet.golden import made_here  # noqa: E402
from lanai.fleet.reference import parse_reference  # noqa: E402
from lanai.fleet.registry import RegistryClient  # noqa: E402
from lanai.store import Store  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--before", type=float, default=8.0)
    parser.add_argument("--after", type=float, default=8.0)
    args = parser.parse_args()
    buffer = io.BytesIO()
    Image.fromarray(data.chelsea()).save(buffer, "JPEG", quality=90)
    photo = buffer.getvalue()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        registry, registry_proc = start_registry(root / "registry")
        source = Store(root / "source")
        ensure_default_model(source)
        (root / "chelsea.jpg").write_bytes(photo)
        golden = made_here(source, Settings(home=source.root), DEFAULT_MODEL, 1, [root / "chelsea.jpg"])
        ref = parse_reference(f"{registry.host}/models/classifier:stable")
        client = RegistryClient(registry.host, plain_http=True)
        push(source, DEFAULT_MODEL, 1, ref, client, golden=golden)
        home = root / "box"
        write_follow_entries(home, [Follow(DEFAULT_MODEL, str(ref), plain_http=True)])
        (home / "lanai.toml").write_text("[server]\nfollow_interval_s = 0.5\nwatch_s = 30\n")
        serve = ["serve", "--home", str(home), "--host", "127.0.0.1", "--port", "18977", "--no-grpc", "--no-discovery"]
        box = subprocess.Popen([sys.executable, "-m", "lanai.cli", *serve], stderr=subprocess.DEVNULL)
        url = "http://127.0.0.1:18977"
        poster = Poster(url)
        path = f"/v1/models/{DEFAULT_MODEL}/classify"
        try:
            # the box's own version numbers: the first that answers from the channel is the old one
            deadline, old = time.monotonic() + 120, None
            while old is None and time.monotonic() < deadline:
                history = home / "fleet" / f"{DEFAULT_MODEL}.history.jsonl"
                if history.is_file() and '"activated"' in history.read_text():
                    old = str(poster.post(path, photo, "image/jpeg")["version"])
                time.sleep(0.2)
            rows: list[tuple[float, float, str]] = []  # (start, seconds, version or error)
            stop = threading.Event()

            def caller() -> None:
                while not stop.is_set():
                    began = time.monotonic()
                    try:
                        version = str(poster.post(path, photo, "image/jpeg")["version"])
                    except Exception as exc:  # every failure counts
                        version = f"error: {str(exc)[:60]}"
                    rows.append((began, time.monotonic() - began, version))

            threads = [threading.Thread(target=caller) for _ in range(args.concurrency)]
            for t in threads:
                t.start()
            time.sleep(args.before)
            bundled = bundled_model_dir()  # the same weights as version 1: its golden input passes
            source.add(bundled / "model.onnx", name=DEFAULT_MODEL, task="classify", labels=bundled / "labels.txt",
                       preprocess=DEFAULT_PREPROCESS, inspect=inspector("onnx", "classify"))  # fmt: skip
            pushed = time.monotonic()
            push(source, DEFAULT_MODEL, 2, ref, client, golden=golden)
            first_new = None
            while first_new is None and time.monotonic() < pushed + 120:
                time.sleep(0.05)
                news = [r[0] for r in list(rows) if r[2] != old and not r[2].startswith("error")]
                first_new = min(news) if news else None
            time.sleep(args.after)
            stop.set()
            for t in threads:
                t.join()
        finally:
            box.terminate()
            box.wait(30)
            client.close()
            stop_registry(registry_proc)
    assert first_new is not None, "the new version never answered"
    windows = {"before the push": (0, pushed), "push → new version + after": (pushed, first_new + args.after),
               "after": (first_new + args.after, float("inf"))}  # fmt: skip
    print(f"new version answered {first_new - pushed:.2f} s after the push (poll 0.5 s, pull, load, golden, swap)")
    print(f"{'window':<28} {'requests':>9} {'failed':>7} {'old':>7} {'new':>7} {'p50 ms':>8} {'p99 ms':>8}")
    for name, (start, end) in windows.items():
        chosen = [r for r in rows if start <= r[0] < end]
        failed = sum(1 for r in chosen if r[2].startswith("error"))
        versions = Counter("old" if r[2] == old else "new" for r in chosen if not r[2].startswith("error"))
        latencies = sorted(r[1] for r in chosen if not r[2].startswith("error"))
        p50 = statistics.median(latencies) * 1e3 if latencies else float("nan")
        p99 = latencies[int(0.99 * (len(latencies) - 1))] * 1e3 if latencies else float("nan")
        print(
            f"{name:<28} {len(chosen):>9} {failed:>7} {versions['old']:>7} {versions['new']:>7} {p50:>8.1f} {p99:>8.1f}"
        )
    errors = Counter(r[2] for r in rows if r[2].startswith("error"))
    if errors:
        print("errors:", dict(errors))


if __name__ == "__main__":
    main()
