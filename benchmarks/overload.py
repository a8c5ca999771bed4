"""Overload: does `lanai serve` shed load (503 + Retry-After) when offered ten times what it can do, keep
the latency of what it admits bounded, and recover once the load falls back?

The server is a `lanai serve` subprocess on the soak's store (benchmarks/soak.py: bundled
efficientnet-lite0, the tiny classifiers), its models with their default batching (max_queue_size 256,
max_batch_size 8, instances: one more than the cores). The load is classify on efficientnet-lite0, a
300×451 JPEG as multipart, from raw HTTP/1.1 on asyncio (benchmarks/soak.py's Connection).

1. capacity: a closed loop of ``--concurrency`` clients (enough to keep every batch full) for
   ``--measure`` s: requests per second, X;
2. before: an open loop at 0.5·X for ``--before`` s (requests started at a fixed rate, whatever the
   answers), the latency to compare with;
3. overload: an open loop at ``--factor``·X (default 10) for ``--overload`` s;
4. after: 0.5·X again for ``--after`` s.

An open loop needs a connection per request in flight: idle keep-alive connections are reused, new ones
are opened from 32 loopback source addresses (127.0.0.2…, at most 40 each: one address may hold 64) and at
most ``--max-connections`` at once (default 900, under uvicorn's limit_concurrency of 1024); a request
due while every connection is busy is counted as "not sent". /metrics is read every 0.5 s for
lanai_queue_depth. The report: per phase the answers by status (and whether each 503/429 carries
Retry-After), p50/p99 of the admitted (200) requests, the queue depth's maximum, and per second after
the overload the p99 of the requests started in that second.

    python benchmarks/overload.py --factor 10 --overload 20 --after 10
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import re
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from soak import Connection, Server, build_store, multipart, percentile, request_head, serve  # noqa: E402

from support import encode, photo  # noqa: E402

SOURCES = [f"127.0.0.{n}" for n in range(2, 34)]
PER_SOURCE = 40
KEEP_IDLE = 3.0
"""Seconds an idle connection is reused: uvicorn closes keep-alive connections idle for 5 s, and a request
sent on one as it closes would fail for the client's reason, not the server's."""
MODEL = "efficientnet-lite0"


@dataclass
class Shot:
    phase: str
    began: float
    seconds: float
    outcome: str
    """A status ("200", "503", …), "not sent" (every connection busy) or "error: …"."""
    retry_after: bool = False


@dataclass
class Pool:
    """Keep-alive connections for an open loop: idle ones are reused, new ones spread over SOURCES."""

    host: str
    port: int
    cap: int
    idle: list[tuple[Connection, float]] = field(default_factory=list)
    busy: int = 0
    per_source: Counter[str] = field(default_factory=Counter)

    def take(self) -> Connection | None:
        now = time.monotonic()
        while self.idle:
            conn, since = self.idle.pop()
            if now - since < KEEP_IDLE:
                self.busy += 1
                return conn
            self.per_source[conn.source or ""] -= 1
            conn.abort()
        if self.busy >= self.cap:
            return None
        source = min(SOURCES, key=lambda s: self.per_source[s])
        if self.per_source[source] >= PER_SOURCE:
            return None
        self.per_source[source] += 1
        self.busy += 1
        return Connection(self.host, self.port, source)

    def give(self, conn: Connection, alive: bool) -> None:
        self.busy -= 1
        if alive and conn.writer is not None:
            self.idle.append((conn, time.monotonic()))
        else:
            self.per_source[conn.source or ""] -= 1
            conn.abort()

    async def close(self) -> None:
        for conn, _ in self.idle:
            await conn.close()
        self.idle.clear()


async def shoot(pool: Pool, conn: Connection, head: bytes, body: bytes, phase: str, shots: list[Shot]) -> None:
    began = time.monotonic()
    alive = False
    try:
        answer = await asyncio.wait_for(conn.request(head, body), 60)
        alive = True
        shots.append(Shot(phase, began, time.monotonic() - began, str(answer.status), "retry-after" in answer.headers))
    except (OSError, ConnectionError, ValueError, asyncio.IncompleteReadError, asyncio.TimeoutError) as exc:
        shots.append(Shot(phase, began, time.monotonic() - began, f"error: {type(exc).__name__}: {exc}"))
    finally:
        pool.give(conn, alive)


async def closed_loop(pool: Pool, head: bytes, body: bytes, concurrency: int, seconds: float) -> list[Shot]:
    shots: list[Shot] = []
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        while time.monotonic() < deadline:
            conn = pool.take()
            assert conn is not None
            await shoot(pool, conn, head, body, "capacity", shots)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return shots


async def open_loop(
    pool: Pool, head: bytes, body: bytes, rate: float, seconds: float, phase: str, shots: list[Shot], tasks: set
) -> None:
    """Start ``rate`` requests a second for ``seconds``, on time whatever the answers."""
    began = time.monotonic()
    started = 0
    while (now := time.monotonic()) < began + seconds:
        due = int((now - began) * rate) - started
        for _ in range(due):
            conn = pool.take()
            if conn is None:
                shots.append(Shot(phase, now, 0.0, "not sent"))
            else:
                task = asyncio.ensure_future(shoot(pool, conn, head, body, phase, shots))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        started += due
        await asyncio.sleep(0.002)


async def watch_queue(server: Server, stop: asyncio.Event, depths: list[tuple[float, float, float]]) -> None:
    """(time, lanai_queue_depth of MODEL, seconds /metrics took) every 0.5 s."""
    conn = Connection(server.host, server.port, "127.0.0.1")
    head = f"GET /metrics HTTP/1.1\r\nHost: {server.host}\r\n\r\n".encode()
    try:
        while not stop.is_set():
            began = time.monotonic()
            try:
                answer = await asyncio.wait_for(conn.request(head, b""), 30)
                found = re.search(rf'^lanai_queue_depth\{{model="{MODEL}"\}} (\S+)$', answer.body.decode(), re.M)
                depths.append((began, float(found.group(1)) if found else float("nan"), time.monotonic() - began))
            except (OSError, ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError):
                conn.abort()
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except asyncio.TimeoutError:
                pass
    finally:
        await conn.close()


@dataclass
class Result:
    capacity: float
    capacity_p50: float
    capacity_p99: float
    rates: dict[str, float]
    shots: list[Shot]
    depths: list[tuple[float, float, float]]
    phase_start: dict[str, float]
    queue_size: int = 256

    def of(self, phase: str) -> list[Shot]:
        return [s for s in self.shots if s.phase == phase]

    def admitted(self, phase: str, start: float | None = None, end: float | None = None) -> list[float]:
        return [
            s.seconds
            for s in self.of(phase)
            if s.outcome == "200" and (start is None or s.began >= start) and (end is None or s.began < end)
        ]

    def shares(self, phase: str) -> Counter[str]:
        return Counter(s.outcome.split(":")[0] for s in self.of(phase))

    def goodput(self, phase: str) -> float:
        """Requests answered 200 a second, of those started in ``phase``."""
        seconds = self.rates["after_seconds"] if phase == "after" else self.rates[f"{phase}_seconds"]
        return len(self.admitted(phase)) / seconds

    def p99_before(self) -> float:
        return percentile(self.admitted("before"), 0.99)

    def recovery(self) -> list[tuple[int, float, int]]:
        """Per second after the overload: (second, p99 of the admitted requests started in it, how many)."""
        t0 = self.phase_start["after"]
        rows = []
        for n in range(int(self.rates["after_seconds"])):
            found = self.admitted("after", t0 + n, t0 + n + 1)
            rows.append((n, percentile(found, 0.99), len(found)))
        return rows

    def recovered_after(self, factor: float = 2.0) -> float:
        """The first second n after the overload from which on the p99 is within ``factor``× the one before:
        the p99 of all the admitted requests started from n s after it to the end (one second's p99 is of
        a hundred requests or fewer, its second slowest, and a single slow one would move it)."""
        limit = factor * self.p99_before()
        t0 = self.phase_start["after"]
        for n in range(int(self.rates["after_seconds"])):
            rest = self.admitted("after", t0 + n)
            if rest and percentile(rest, 0.99) <= limit:
                return float(n)
        return float("inf")

    def max_depth(self, phase: str) -> float:
        start = self.phase_start[phase]
        end = self.phase_start.get({"before": "overload", "overload": "after"}.get(phase, ""), float("inf"))
        found = [d for t, d, _ in self.depths if start <= t < end]
        return max(found) if found else float("nan")


async def measure(server: Server, *, concurrency: int, measure_s: float, factor: float, before: float,
                  overload: float, after: float, out: bool = True) -> Result:  # fmt: skip
    form, form_type = multipart(encode(photo("chelsea"), quality=90))
    head = request_head("POST", f"/v1/models/{MODEL}/classify", server.host, form_type, len(form))
    pool = Pool(server.host, server.port, cap=900)
    await closed_loop(pool, head, form, concurrency, 2.0)  # warm-up
    found = await closed_loop(pool, head, form, concurrency, measure_s)
    ok = [s.seconds for s in found if s.outcome == "200"]
    measured = len(ok) / measure_s
    capacity = measured
    if out:
        print(f"capacity: {measured:.1f} req/s closed loop at {concurrency} (p50 {percentile(ok, 0.5) * 1e3:.0f} ms, "
              f"p99 {percentile(ok, 0.99) * 1e3:.0f} ms; {len(found) - len(ok)} not 200)", flush=True)  # fmt: skip
    shots: list[Shot] = []
    depths: list[tuple[float, float, float]] = []
    tasks: set[asyncio.Task] = set()
    stop = asyncio.Event()
    watcher = asyncio.ensure_future(watch_queue(server, stop, depths))
    phase_start = {}
    rates = {"before": 0.5 * capacity, "overload": factor * capacity, "after": 0.5 * capacity,
             "before_seconds": before, "overload_seconds": overload, "after_seconds": after}  # fmt: skip
    for phase, seconds in (("before", before), ("overload", overload), ("after", after)):
        phase_start[phase] = time.monotonic()
        if out:
            print(f"{phase}: {rates[phase]:.0f} req/s offered for {seconds:g} s", flush=True)
        await open_loop(pool, head, form, rates[phase], seconds, phase, shots, tasks)
    if tasks:
        await asyncio.wait(set(tasks), timeout=60)
    stop.set()
    await watcher
    await pool.close()
    return Result(measured, percentile(ok, 0.5), percentile(ok, 0.99), rates, shots, depths, phase_start)


def report(result: Result) -> None:
    print(f"\n{'phase':9} {'offered/s':>9} {'sent/s':>7} {'200':>6} {'503':>6} {'429':>5} {'other':>5} {'unsent':>6} "
          f"{'RA on 503/429':>13} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'queue max':>9}")  # fmt: skip
    for phase in ("before", "overload", "after"):
        shots, shares = result.of(phase), result.shares(phase)
        seconds = result.rates["after_seconds"] if phase == "after" else None
        span = (seconds or 0) or (max(s.began for s in shots) - min(s.began for s in shots) if shots else 1)
        sent = len(shots) - shares["not sent"]
        refused = [s for s in shots if s.outcome in ("503", "429")]
        with_ra = f"{sum(s.retry_after for s in refused)}/{len(refused)}"
        other = sent - shares["200"] - shares["503"] - shares["429"]
        ok = result.admitted(phase)
        print(f"{phase:9} {result.rates[phase]:>9.0f} {sent / max(span, 1e-9):>7.0f} {shares['200']:>6} "
              f"{shares['503']:>6} {shares['429']:>5} {other:>5} {shares['not sent']:>6} {with_ra:>13} "
              f"{percentile(ok, 0.5) * 1e3:>7.0f} {percentile(ok, 0.99) * 1e3:>7.0f} "
              f"{(max(ok) if ok else float('nan')) * 1e3:>7.0f} {result.max_depth(phase):>9.0f}")  # fmt: skip
    errors = Counter(s.outcome for s in result.shots if s.outcome.startswith("error") or s.outcome[:1] in "45")
    if errors:
        print("non-200 answers:", dict(errors.most_common(6)))
    print("\nafter the overload, p99 per second (admitted requests started in it):")
    print("  " + "  ".join(f"{n}s: {p99 * 1e3:.0f} ms ({count})" for n, p99, count in result.recovery()))
    print(f"p99 before {result.p99_before() * 1e3:.0f} ms; the p99 of the requests started from "
          f"{result.recovered_after():g} s after the overload on is within 2× of it")  # fmt: skip
    good = result.goodput("overload")
    print(f"admitted during the overload: {good:.1f}/s, {good / result.capacity:.0%} of the capacity measured "
          f"closed-loop ({result.capacity:.1f}/s)")  # fmt: skip
    slow = max((took for _, _, took in result.depths), default=float("nan"))
    print(f"/metrics answered in at most {slow * 1e3:.0f} ms during the run")


def run(*, concurrency: int = 32, measure_s: float = 8.0, factor: float = 10.0, before: float = 8.0,
        overload: float = 20.0, after: float = 10.0, out: bool = True) -> Result:  # fmt: skip
    import uvloop

    with tempfile.TemporaryDirectory(prefix="lanai-overload-") as tmp:
        store, _ = build_store(Path(tmp), chat=False)
        with serve(store.root) as server:
            result = uvloop.run(measure(server, concurrency=concurrency, measure_s=measure_s, factor=factor,
                                        before=before, overload=overload, after=after, out=out))  # fmt: skip
            check = http.client.HTTPConnection(server.host, server.port, timeout=10)
            check.request("GET", "/health/live")
            alive = check.getresponse().status
            check.close()
            if alive != 200 or server.proc.poll() is not None:
                raise RuntimeError("lanai serve did not survive the overload:\n" + server.log_tail())
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=32, help="clients of the capacity measure")
    parser.add_argument("--measure", type=float, default=8.0, help="seconds of the capacity measure")
    parser.add_argument("--factor", type=float, default=10.0, help="overload: this many times the capacity")
    parser.add_argument("--before", type=float, default=8.0)
    parser.add_argument("--overload", type=float, default=20.0)
    parser.add_argument("--after", type=float, default=10.0)
    args = parser.parse_args(argv)
    result = run(concurrency=args.concurrency, measure_s=args.measure, factor=args.factor, before=args.before,
                 overload=args.overload, after=args.after)  # fmt: skip
    report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
