"""The load generator: ``concurrency`` keep-alive connections, each re-sending one request back to back.

A run connects every connection, warms up for ``warmup`` seconds, then measures either for ``duration``
seconds or until exactly ``requests`` requests have completed.

- In duration mode, a request is measured when it *completes* inside the measured window, whenever it
  was sent: one sent during warm-up and answered seconds later counts with all it waited, so a server
  that leaves some connections waiting while it answers others cannot hide them. Requests still in
  flight at the deadline are in no percentile, only counted (``unfinished``, and how long the oldest had
  waited by then), whenever they were sent.
- In requests mode, a request is measured when it was *sent* after warm-up, so that exactly
  ``requests`` are.

Latency runs from the request's first byte written to its response's last byte read; reconnecting is
not part of it.
"""

from __future__ import annotations

import asyncio
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from time import perf_counter_ns

from lanai.bench.client import Connection
from lanai.bench.config import BenchConfig, Target, parse_url
from lanai.bench.progress import Snapshot
from lanai.bench.report import BenchResult, summarize

__all__ = ["BenchConfig", "run", "run_load"]

_NEVER = 1 << 62


class _Run:
    """The state one run shares between its connections: budget, clock windows and recorded outcomes."""

    def __init__(self, config: BenchConfig, target: Target) -> None:
        self.config, self.target = config, target
        request = replace(config.request, path=target.prefix + config.request.path)
        self.payload = request.to_bytes(target.host_header)
        self.ssl = config.ssl_context()  # one context: its session cache lets connections resume
        self.head_request = request.method == "HEAD"
        self.budget, self.issued, self.completed = config.requests, 0, 0
        self.timeout_ns = int(config.timeout * 1e9)
        self.measure_ns, self.end_ns, self.stop_ns = _NEVER, _NEVER, _NEVER
        self.latencies = array("q")  # ns of each successful measured request
        self.errors: Counter[str] = Counter()
        self.unfinished: list[int] = []  # ns each measured request unanswered at the end had waited by then
        self.conns: set[Connection] = set()
        self.connect_error: BaseException | None = None
        self.done = False
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def start(self, now: int) -> None:
        self.measure_ns = now + int(self.config.warmup * 1e9)
        if self.config.duration is not None:
            self.end_ns = self.measure_ns + int(self.config.duration * 1e9)

    def reserve(self, now: int) -> bool:
        if self.done:
            return False
        if now < self.measure_ns:
            return True
        if self.budget is None:
            return now < self.end_ns
        if self.issued < self.budget:
            self.issued += 1
            return True
        return False

    def record(self, sent_ns: int, status: int) -> None:
        if self.done:
            return
        now = perf_counter_ns()
        if now > self.end_ns:  # answered only after the end: unanswered when it came
            self.unfinished.append(self.end_ns - sent_ns)
            return
        if not self._measured(sent_ns, now):
            return
        if 200 <= status < 300:
            self.latencies.append(now - sent_ns)
        else:
            self.errors[str(status)] += 1
        self._count(now)

    def fail(self, sent_ns: int, kind: str) -> None:
        now = perf_counter_ns()
        if self.done or not self._measured(sent_ns, now):
            return
        self.errors[kind] += 1
        self._count(now)

    def _measured(self, sent_ns: int, now: int) -> bool:
        """Whether an outcome at ``now`` of the request sent at ``sent_ns`` is measured: it came inside the
        window, and in requests mode the request was sent inside it too."""
        if not self.measure_ns <= now <= self.end_ns:
            return False
        return self.budget is None or sent_ns >= self.measure_ns

    def _count(self, now: int) -> None:
        self.completed += 1
        if self.budget is not None and self.completed >= self.budget:
            self.finish(now)

    def finish(self, now: int) -> None:
        if not self.done:
            self.done, self.stop_ns = True, now
            if self.end_ns != _NEVER:  # a timed run: what is still in flight was unanswered at the end too
                waiting = [c.sent_ns for c in self.conns if 0 < c.sent_ns < self.end_ns]
                self.unfinished += [self.end_ns - sent for sent in waiting]
        if not self.finished.done():
            self.finished.set_result(None)

    def more_to_send(self) -> bool:
        if self.budget is None:
            return not self.done and perf_counter_ns() < self.end_ns
        return not self.done and self.issued < self.budget

    async def connect(self) -> Connection | None:
        loop = asyncio.get_running_loop()
        host, port = self.target.host, self.target.port
        factory = partial(Connection, self, self.payload, head_request=self.head_request)
        try:
            opening = loop.create_connection(factory, host, port, ssl=self.ssl)
            _, conn = await asyncio.wait_for(opening, self.config.timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            self.connect_error = exc
            return None
        self.conns.add(conn)
        return conn

    async def worker(self, conn: Connection | None) -> None:
        backoff = 0.0
        while self.more_to_send():
            if conn is None:
                conn = await self.connect()
            if conn is None:
                now = perf_counter_ns()
                if self.reserve(now):
                    self.fail(now, "connection")
                backoff = min(max(2 * backoff, 0.01), 1.0)
                await asyncio.sleep(backoff)
                continue
            backoff = 0.0
            conn.send()
            await asyncio.shield(conn.closed)  # cancelling the worker must not cancel ``closed``
            self.conns.discard(conn)
            conn = None

    async def tick(self, progress: Callable[[Snapshot], None] | None) -> None:
        """Expire timed-out requests, end a timed run and report progress (at most 10 times a second)."""
        interval = min(0.1, max(0.005, self.config.timeout / 10))
        last_report = -_NEVER
        try:
            while not self.done:
                now = perf_counter_ns()
                for conn in [c for c in self.conns if c.sent_ns and now - c.sent_ns > self.timeout_ns]:
                    conn.abort("timeout")
                if now >= self.end_ns:
                    self.finish(self.end_ns)
                elif progress is not None and now - last_report >= 99_000_000:
                    last_report = now
                    progress(self.snapshot(now))
                await asyncio.sleep(interval)
        except Exception as exc:  # a failing progress callback must end the run, not hang it
            if not self.finished.done():
                self.finished.set_exception(exc)

    def snapshot(self, now: int) -> Snapshot:
        elapsed = max(0, min(now, self.stop_ns) - self.measure_ns) / 1e9
        ok = len(self.latencies)
        warming_up = now < self.measure_ns
        return Snapshot(
            elapsed, ok, self.completed - ok, warming_up, self.done, self.config.duration, self.config.requests
        )

    async def shutdown(self, tasks: list[asyncio.Task[None]]) -> None:
        self.done = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        conns = list(self.conns)
        for conn in conns:
            conn.abort("connection")
        await asyncio.gather(*(conn.closed for conn in conns))

    def result(self) -> BenchResult:
        cfg = self.config
        duration = max(0, self.stop_ns - self.measure_ns) / 1e9
        path = self.target.prefix + cfg.request.path
        ok, latency = len(self.latencies), summarize(self.latencies)
        oldest = max(self.unfinished, default=0) / 1e6
        return BenchResult(cfg.url.rstrip("/"), path, cfg.concurrency, duration, ok, dict(self.errors), latency,
                           len(self.unfinished), oldest)  # fmt: skip


async def run_load(config: BenchConfig, progress: Callable[[Snapshot], None] | None = None) -> BenchResult:
    """Run the benchmark ``config`` on the running event loop and return what it measured.

    ``progress`` receives a :class:`Snapshot` at most ten times a second and once at the end.
    Raises ConnectionError when no connection to the server can be opened at all.
    """
    run = _Run(config, parse_url(config.url))
    tasks: list[asyncio.Task[None]] = []
    try:
        first = await asyncio.gather(*(run.connect() for _ in range(config.concurrency)))
        if all(conn is None for conn in first):
            raise ConnectionError(
                f"cannot connect to {run.target.host}:{run.target.port}: {run.connect_error}. "
                "Hint: is the server running (`lanai serve`)? Check the address and port in the URL."
            )
        run.start(perf_counter_ns())
        tasks = [asyncio.create_task(run.worker(conn)) for conn in first]
        tasks.append(asyncio.create_task(run.tick(progress)))
        await run.finished
    finally:
        await run.shutdown(tasks)
    if progress is not None:
        progress(run.snapshot(run.stop_ns))
    return run.result()


def run(config: BenchConfig, progress: Callable[[Snapshot], None] | None = None) -> BenchResult:
    """Run the benchmark on a new event loop (uvloop when installed) and return the result."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("run() cannot be called from a running event loop. Hint: await run_load(config).")
    try:
        import uvloop
    except ImportError:
        return asyncio.run(run_load(config, progress))
    return uvloop.run(run_load(config, progress))
