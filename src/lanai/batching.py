"""Dynamic batching: requests for one model wait together and run as one batch in a worker thread.

The rule that keeps single requests fast: a request that arrives while the model is idle runs at once.
Requests that arrive while a batch is computing queue up and form the next batch. Only when the model is
under load (the last batch held more than one request) does a batch wait up to ``max_queue_delay_us``
for more requests to fill it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from lanai.errors import LanaiError, NotReady, Overloaded
from lanai.types import BatchingConfig

__all__ = ["Batcher", "BatchStats", "Timing"]

log = logging.getLogger(__name__)

_MAX_BUFFERS = 8

RunFn = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
FinishFn = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
CollateFn = Callable[[list[dict[str, np.ndarray]]], dict[str, np.ndarray]]


@dataclass(frozen=True)
class Timing:
    """Where one request's time went inside the batcher, in nanoseconds."""

    queue_ns: int
    compute_ns: int
    batch_size: int
    prepare_ns: int = 0
    """Time the batch spent preparing its requests' inputs (see Batcher.submit_prepared), not in
    ``compute_ns``."""


@dataclass(frozen=True)
class BatchStats:
    """What one batch did: handed to the observer for metrics."""

    batch_size: int
    requests: int
    queue_ns: tuple[int, ...]
    compute_ns: int


@dataclass
class _Item:
    inputs: dict[str, np.ndarray]
    rows: int
    key: object
    future: asyncio.Future
    enqueued_ns: int
    prepare: Callable[[], dict[str, np.ndarray]] | None = None
    finish: FinishFn | None = None
    collate: CollateFn | None = None


def _fail(items: Iterable[_Item], error: BaseException) -> None:
    for item in items:
        if not item.future.done():
            item.future.set_exception(error)


def _shape_key(inputs: dict[str, np.ndarray]) -> tuple:
    """Requests can share a batch only when all but their batch axis agree."""
    return tuple((name, arr.shape[1:], arr.dtype.str) for name, arr in sorted(inputs.items()))


class Batcher:
    """Collects requests for one model into batches and runs them on worker threads of its own.

    ``max_batch_size`` counts rows (a request may carry several); 1 disables batching. Up to
    ``instances`` batches run at once, each on its own thread; a batch takes the first free thread, so at
    low load every batch runs on the same (warm) thread. ``observer`` is called on
    the event loop after every batch. ``run_alone``, if given, runs batches that have the model to
    themselves (nothing else running or queued): e.g. a runtime session using every core for latency,
    where ``run`` uses one core per instance for throughput.
    """

    def __init__(
        self,
        run: RunFn,
        config: BatchingConfig,
        observer: Callable[[BatchStats], None] | None = None,
        run_alone: RunFn | None = None,
        name: str = "lanai-batch",
    ) -> None:
        if min(config.max_batch_size, config.max_queue_size, config.instances) < 1 or config.max_queue_delay_us < 0:
            raise ValueError(f"invalid batching settings: {config}")
        self._run = run
        self._run_alone = run_alone or run
        self._config = config
        self._threads = [ThreadPoolExecutor(1, thread_name_prefix=f"{name}-{i}") for i in range(config.instances)]
        self._free_threads = list(range(config.instances))
        self._observer = observer
        self._queue: deque[_Item] = deque()
        self._wakeup = asyncio.Event()
        self._under_load = False
        self._closing = False
        self._worker: asyncio.Task | None = None
        self._running = 0
        self._batches_running = 0
        self._tasks: set[asyncio.Task] = set()
        self._local = threading.local()  # join buffers, one set per worker thread
        self._queue_cap = config.max_queue_size
        self._delay_us = config.max_queue_delay_us

    def throttle(self, admission: float) -> None:
        """Admit a share (0–1] of the configured queue, and let batches wait longer to fill (up to 4× at
        a quarter): a hot box runs fewer, fuller batches and turns work away sooner."""
        share = min(1.0, max(admission, 0.25))
        self._queue_cap = max(1, round(self._config.max_queue_size * share))
        self._delay_us = round(self._config.max_queue_delay_us / share)

    @property
    def instances(self) -> int:
        """Batches that run at once, each on its own thread."""
        return self._config.instances

    @property
    def runs_alone_apart(self) -> bool:
        """Whether batches that have the model to themselves run on a session of their own (``run_alone``)."""
        return self._run_alone is not self._run

    @property
    def capacity(self) -> int:
        """Rows the model works on at once: its instances' batches."""
        return self._config.instances * self._config.max_batch_size

    @property
    def queue_cap(self) -> int:
        """How many requests may wait now (the configured ``max_queue_size``, less while throttled)."""
        return self._queue_cap

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def in_flight(self) -> int:
        """Requests waiting or computing."""
        return len(self._queue) + self._running

    @property
    def idle(self) -> bool:
        """Nothing is waiting or running, and the last batch did not find the model under load."""
        return not self._queue and not self._running and not self._under_load

    def check_room(self) -> None:
        """Overloaded if the queue is full now: what ``submit`` would answer. A door may ask before it
        reads a request's body, so that refusing costs no more than the headers."""
        if len(self._queue) >= self._queue_cap:
            throttled = " (fewer while the box is hot)" if self._queue_cap < self._config.max_queue_size else ""
            raise Overloaded(
                f"the model's queue is full ({self._queue_cap} requests waiting{throttled}).",
                hint="retry after a short wait, or raise max_queue_size if the box can keep up.",
            )

    async def submit(self, inputs: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], Timing]:
        """Run ``inputs`` (batch axis first) in some batch; return this request's rows of the outputs."""
        rows = next(iter(inputs.values())).shape[0] if inputs else 1
        return await self._enqueue(inputs, rows, _shape_key(inputs), None)

    async def submit_prepared(
        self,
        prepare: Callable[[], dict[str, np.ndarray]],
        key: object = None,
        finish: FinishFn | None = None,
        collate: CollateFn | None = None,
    ) -> tuple[dict[str, np.ndarray], Timing]:
        """Run ``prepare()`` (one row of inputs) on the worker thread, then the model on its batch.

        The request skips a thread hand-off (e.g. image decoding on a pool of its own), and its inputs
        are made on the core that runs the model. Prepared requests with the same ``key`` (one whose
        ``prepare`` makes inputs of the same shapes, and whose ``finish`` is the same) may share a batch;
        without a key, a request runs alone. ``finish``, if given, turns the whole batch's outputs into
        the rows the requests get, on the worker thread too (e.g. softmax and ranking, once per batch).

        ``collate``, if given (the same for every request of a key), joins the prepared inputs of a batch
        instead of concatenating them: e.g. token rows of different lengths, padded to the longest. A
        prepared request counts as one row while it waits; it may make several (a long text's chunks),
        and gets back as many rows of the outputs as it made.
        """
        return await self._enqueue({}, 1, object() if key is None else key, prepare, finish, collate)

    async def _enqueue(
        self,
        inputs: dict[str, np.ndarray],
        rows: int,
        key: object,
        prepare: Callable[[], dict[str, np.ndarray]] | None,
        finish: FinishFn | None = None,
        collate: CollateFn | None = None,
    ) -> tuple[dict[str, np.ndarray], Timing]:
        if self._closing:
            raise NotReady("the model is being unloaded.", hint="retry; another version may be loading.")
        self.check_room()
        loop = asyncio.get_running_loop()
        item = _Item(inputs, rows, key, loop.create_future(), time.perf_counter_ns(), prepare, finish, collate)
        self._queue.append(item)
        if self._worker is None:
            self._worker = loop.create_task(self._work(), name="lanai-batcher")
        self._wakeup.set()
        return await item.future  # type: ignore[no-any-return]

    async def close(self, timeout: float | None = None) -> None:
        """Refuse new requests, let queued ones finish (up to ``timeout`` s), then stop the worker."""
        self._closing = True
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.in_flight and (deadline is None or time.monotonic() < deadline):
            await asyncio.sleep(0.005)
        for task in [self._worker, *self._tasks]:
            if task is not None:
                task.cancel()
        await asyncio.gather(*[t for t in [self._worker, *self._tasks] if t is not None], return_exceptions=True)
        _fail(self._queue, NotReady("the model was unloaded before this request ran."))
        self._queue.clear()
        for thread in self._threads:
            thread.shutdown(wait=False)  # a run still going finishes on its own; nobody waits for it

    async def _work(self) -> None:
        while True:
            if not self._queue or self._batches_running >= self._config.instances:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self._under_load and self._delay_us:
                await self._wait_to_fill()
            batch = self._take_batch()
            if not batch:
                continue
            self._batches_running += 1  # counted now: the task below may not start before the next loop
            if self._config.instances == 1:
                await self._run_batch(batch)
            else:
                task = asyncio.get_running_loop().create_task(self._run_batch(batch))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _wait_to_fill(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = self._queue[0].enqueued_ns + self._delay_us * 1000
        while sum(i.rows for i in self._queue) < self._config.max_batch_size:
            remaining = (deadline - time.perf_counter_ns()) / 1e9
            if remaining <= 0:
                return
            self._wakeup.clear()
            timer = loop.call_later(remaining, self._wakeup.set)  # cheaper than wait_for's task
            await self._wakeup.wait()
            timer.cancel()

    def _take_batch(self) -> list[_Item]:
        """The oldest live request plus later ones of the same shape, up to ``max_batch_size`` rows, and
        no more than a fair share of the queue when other instances are free to take the rest."""
        while self._queue and self._queue[0].future.done():  # its client went away
            self._queue.popleft()
        if not self._queue:
            return []
        free = self._config.instances - self._batches_running
        queued = sum(item.rows for item in self._queue)
        limit = min(self._config.max_batch_size, max(1, -(-queued // free)))
        first = self._queue.popleft()
        batch, rows, skipped = [first], first.rows, []
        while self._queue and rows < limit:
            item = self._queue.popleft()
            if item.future.done():
                continue
            if item.key != first.key or rows + item.rows > limit:
                skipped.append(item)
                continue
            batch.append(item)
            rows += item.rows
        self._queue.extendleft(reversed(skipped))
        return batch

    async def _run_batch(self, batch: list[_Item]) -> None:
        loop = asyncio.get_running_loop()
        start = time.perf_counter_ns()
        alone = not self._under_load and self._batches_running == 1 and not self._queue
        run = self._run_alone if alone else self._run
        self._running += len(batch)
        try:
            slot = self._free_threads.pop(0)
            try:
                result = await loop.run_in_executor(self._threads[slot], self._compute, run, batch)
            finally:
                self._free_threads.append(slot)
                self._free_threads.sort()
        except asyncio.CancelledError:  # close() gave up waiting for this batch
            _fail(batch, NotReady("the model was unloaded while this request ran."))
            raise
        except Exception as exc:
            result = None
            error: BaseException = exc
        finally:
            self._running -= len(batch)
            self._batches_running -= 1
            self._wakeup.set()
        self._under_load = len(batch) > 1 or bool(self._queue)
        if result is None:
            self._fail_or_retry(batch, error)
            return
        outputs, prepare_ns, compute_ns = result
        self._deliver(batch, outputs, start, prepare_ns, compute_ns)

    def _compute(self, run: RunFn, batch: list[_Item]) -> tuple[dict[str, np.ndarray], int, int]:
        """Runs in a worker thread: the outputs, the ns spent preparing inputs and the ns running the model."""
        start = time.perf_counter_ns()
        inputs = []
        for item in batch:
            if item.prepare is None:
                inputs.append(item.inputs)
                continue
            made = item.prepare()
            item.rows = len(next(iter(made.values()))) if made else 1  # read on the loop, after this
            inputs.append(made)
        if batch[0].collate is not None:  # a batch shares its key, so its requests share their collate
            joined = batch[0].collate(inputs)
        elif len(inputs) == 1:
            joined = inputs[0]
        else:  # each thread reuses its own join buffers
            joined = {name: self._join(name, [one[name] for one in inputs]) for name in inputs[0]}
        prepared = time.perf_counter_ns()
        outputs = run(joined)
        if batch[0].finish is not None:  # a batch shares its key, so its requests share their finish
            outputs = batch[0].finish(outputs)
        return outputs, prepared - start, time.perf_counter_ns() - prepared

    def _join(self, name: str, arrays: list[np.ndarray]) -> np.ndarray:
        """Concatenate into a buffer kept per input and row shape: fresh large arrays cost page faults
        every batch. (Per input: two inputs of one shape, e.g. a text model's ids and mask, need two.)"""
        first = arrays[0]
        rows = sum(len(a) for a in arrays)
        key = (name, first.shape[1:], first.dtype.str)
        if first.dtype == object or rows > self._config.max_batch_size:
            return np.concatenate(arrays)
        buffers: dict[tuple, np.ndarray] = self._local.__dict__.setdefault("buffers", {})
        buffer = buffers.get(key)
        if buffer is None:
            if len(buffers) >= _MAX_BUFFERS:  # inputs of many shapes: keep only recent ones
                buffers.clear()
            buffer = buffers[key] = np.empty((self._config.max_batch_size, *first.shape[1:]), first.dtype)
        return np.concatenate(arrays, out=buffer[:rows])

    def _deliver(
        self, batch: list[_Item], outputs: dict[str, np.ndarray], start: int, prepare_ns: int, compute_ns: int
    ) -> None:
        rows = sum(item.rows for item in batch)
        offset = 0
        for item in batch:
            part = outputs if len(batch) == 1 else {k: v[offset : offset + item.rows] for k, v in outputs.items()}
            offset += item.rows
            if not item.future.done():
                timing = Timing(start - item.enqueued_ns, compute_ns, rows, prepare_ns)
                item.future.set_result((part, timing))
        if self._observer is not None:
            queue_ns = tuple(start - item.enqueued_ns for item in batch)
            self._observer(BatchStats(rows, len(batch), queue_ns, compute_ns))

    def _fail_or_retry(self, batch: list[_Item], error: BaseException) -> None:
        """A failed batch of one fails its request; the requests of a failed batch of many go back to
        the front of the queue to run alone, so one bad request cannot fail the others."""
        if len(batch) == 1:
            if not isinstance(error, LanaiError):
                log.error("model run failed", exc_info=error)
            _fail(batch, error)
            return
        for item in batch:
            item.key = object()  # shares a batch with nothing
        self._queue.extendleft(reversed(batch))
        self._wakeup.set()
