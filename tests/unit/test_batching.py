from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from lanai.batching import Batcher, BatchStats
from lanai.errors import BadInput, NotReady, Overloaded
from lanai.types import BatchingConfig


class Recorder:
    """A model that doubles its input, records every batch it ran, and can be held while running."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.gate.wait(10)
        x = inputs["x"]
        if (x < 0).any():
            raise BadInput("negative input")
        self.batches.append(len(x))
        return {"y": x * 2}


def run(coro):
    return asyncio.run(coro)


def make(model: Recorder, **config: int) -> tuple[Batcher, list[BatchStats]]:
    stats: list[BatchStats] = []
    return Batcher(model, BatchingConfig(**{"instances": 1, **config}), observer=stats.append), stats


def rows(*values: float) -> dict[str, np.ndarray]:
    return {"x": np.array([[v] for v in values], dtype=np.float32)}


async def behind_a_held_batch(
    batcher: Batcher, model: Recorder, *waiting: dict[str, np.ndarray]
) -> tuple[asyncio.Future, list[asyncio.Future]]:
    """Hold the model, start one batch (rows(0)) that blocks on it, then queue ``waiting`` behind it."""
    model.gate.clear()
    running = asyncio.ensure_future(batcher.submit(rows(0)))
    await asyncio.sleep(0.05)  # the first batch is now running, held by the gate
    queued = [asyncio.ensure_future(batcher.submit(inputs)) for inputs in waiting]
    await asyncio.sleep(0.05)
    return running, queued


def test_single_request_runs_at_once_and_gets_its_rows() -> None:
    model = Recorder()

    async def main() -> None:
        batcher, stats = make(model, max_batch_size=8, max_queue_delay_us=1_000_000)
        out, timing = await asyncio.wait_for(batcher.submit(rows(1, 2)), 5)
        np.testing.assert_array_equal(out["y"], [[2], [4]])
        assert timing.batch_size == 2
        # An idle model does not wait max_queue_delay (1 s) for company.
        assert timing.queue_ns < 200_000_000
        assert stats[0].requests == 1

    run(main())


def test_requests_arriving_while_busy_share_the_next_batch() -> None:
    model = Recorder()

    async def main() -> None:
        batcher, stats = make(model, max_batch_size=4, max_queue_delay_us=0)
        first, rest = await behind_a_held_batch(batcher, model, *(rows(v) for v in (1, 2, 3, 4, 5)))
        model.gate.set()
        results = await asyncio.gather(first, *rest)
        assert [float(out["y"][0, 0]) for out, _ in results] == [0, 2, 4, 6, 8, 10]
        assert model.batches == [1, 4, 1]  # max_batch_size caps the second batch at 4 rows
        assert [s.batch_size for s in stats] == [1, 4, 1]

    run(main())


def test_different_shapes_never_share_a_batch() -> None:
    model = Recorder()

    async def main() -> None:
        batcher, _ = make(model, max_batch_size=8, max_queue_delay_us=0)
        wide = {"x": np.ones((1, 3), dtype=np.float32)}
        first, others = await behind_a_held_batch(batcher, model, rows(1), wide, rows(2))
        model.gate.set()
        results = await asyncio.gather(first, *others)
        np.testing.assert_array_equal(results[2][0]["y"], [[2, 2, 2]])
        assert sorted(model.batches) == [1, 1, 2]

    run(main())


def test_full_queue_is_refused_at_once() -> None:
    model = Recorder()

    async def main() -> None:
        batcher, _ = make(model, max_batch_size=1, max_queue_size=2)
        model.gate.clear()
        running = asyncio.ensure_future(batcher.submit(rows(0)))
        await asyncio.sleep(0.05)
        queued = [asyncio.ensure_future(batcher.submit(rows(v))) for v in (1, 2)]
        await asyncio.sleep(0)
        with pytest.raises(Overloaded):
            await batcher.submit(rows(3))
        model.gate.set()
        await asyncio.gather(running, *queued)

    run(main())


def test_one_bad_request_in_a_batch_fails_alone() -> None:
    model = Recorder()

    async def main() -> None:
        batcher, _ = make(model, max_batch_size=8, max_queue_delay_us=0)
        first, (good1, bad, good2) = await behind_a_held_batch(batcher, model, rows(1), rows(-1), rows(2))
        model.gate.set()
        await first
        assert float((await good1)[0]["y"][0, 0]) == 2
        assert float((await good2)[0]["y"][0, 0]) == 4
        with pytest.raises(BadInput):
            await bad

    run(main())


def test_cancelled_request_is_skipped() -> None:
    model = Recorder()

    async def main() -> None:
        batcher, _ = make(model, max_batch_size=8, max_queue_delay_us=0)
        model.gate.clear()
        first = asyncio.ensure_future(batcher.submit(rows(0)))
        await asyncio.sleep(0.05)
        gone = asyncio.ensure_future(batcher.submit(rows(7)))
        kept = asyncio.ensure_future(batcher.submit(rows(1)))
        await asyncio.sleep(0.01)
        gone.cancel()
        model.gate.set()
        await first
        assert float((await kept)[0]["y"][0, 0]) == 2
        assert model.batches == [1, 1]

    run(main())


def test_under_load_a_batch_waits_to_fill() -> None:
    model = Recorder()

    async def main() -> None:
        batcher, _ = make(model, max_batch_size=4, max_queue_delay_us=300_000)
        model.gate.clear()
        burst = [asyncio.ensure_future(batcher.submit(rows(v))) for v in (0, 1, 2)]
        await asyncio.sleep(0.05)
        model.gate.set()
        await asyncio.gather(*burst)  # one batch of 3: the model is now under load
        early = asyncio.ensure_future(batcher.submit(rows(3)))
        await asyncio.sleep(0.05)
        late = asyncio.ensure_future(batcher.submit(rows(4)))
        await asyncio.gather(early, late)
        assert model.batches == [3, 2]  # the early request waited for the late one

    run(main())


def test_close_drains_then_refuses() -> None:
    model = Recorder()

    async def main() -> None:
        batcher, _ = make(model, max_batch_size=2)
        model.gate.clear()
        pending = [asyncio.ensure_future(batcher.submit(rows(v))) for v in (1, 2, 3)]
        await asyncio.sleep(0.05)
        closing = asyncio.ensure_future(batcher.close(timeout=10))
        await asyncio.sleep(0.01)
        with pytest.raises(NotReady):
            await batcher.submit(rows(4))
        model.gate.set()
        await closing
        assert [float(out["y"][0, 0]) for out, _ in await asyncio.gather(*pending)] == [2, 4, 6]

    run(main())


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        Batcher(Recorder(), BatchingConfig(max_batch_size=0, instances=1))


def test_instances_run_batches_side_by_side_and_lone_requests_use_run_alone() -> None:
    model, alone = Recorder(), Recorder()

    async def main() -> None:
        stats: list[BatchStats] = []
        batcher = Batcher(model, BatchingConfig(max_batch_size=2, max_queue_delay_us=0, instances=2),
                          observer=stats.append, run_alone=alone)  # fmt: skip
        out, _ = await batcher.submit(rows(1))  # the model is idle: the lone request uses run_alone
        assert float(out["y"][0, 0]) == 2 and alone.batches == [1] and model.batches == []
        model.gate.clear()
        alone.gate.clear()
        first = asyncio.ensure_future(batcher.submit(rows(2)))
        await asyncio.sleep(0.05)  # held in run_alone
        second = asyncio.ensure_future(batcher.submit(rows(3)))
        await asyncio.sleep(0.05)  # a second instance takes it while the first is still running
        assert batcher.in_flight == 2
        model.gate.set()
        assert float((await second)[0]["y"][0, 0]) == 6
        assert not first.done()  # it really ran side by side
        alone.gate.set()
        assert float((await first)[0]["y"][0, 0]) == 4
        assert model.batches == [1] and alone.batches == [1, 1]

    run(main())


def test_prepared_request_runs_prepare_and_model_on_the_worker_thread() -> None:
    model = Recorder()
    main_thread = threading.get_ident()
    seen: list[int] = []

    def prepare() -> dict[str, np.ndarray]:
        seen.append(threading.get_ident())
        return rows(5)

    def failing() -> dict[str, np.ndarray]:
        raise BadInput("not an image")

    async def main() -> None:
        batcher, _ = make(model, max_batch_size=8)
        assert batcher.idle
        out, timing = await batcher.submit_prepared(prepare)
        assert float(out["y"][0, 0]) == 10 and timing.prepare_ns > 0 and timing.batch_size == 1
        assert seen and seen[0] != main_thread
        with pytest.raises(BadInput):
            await batcher.submit_prepared(failing)
        assert batcher.idle and batcher.in_flight == 0

    run(main())


def test_close_gives_up_after_its_timeout_and_fails_what_is_left() -> None:
    model = Recorder()

    async def main() -> None:
        batcher, _ = make(model, max_batch_size=1)
        model.gate.clear()
        running = asyncio.ensure_future(batcher.submit(rows(1)))
        waiting = asyncio.ensure_future(batcher.submit(rows(2)))
        await asyncio.sleep(0.05)
        await asyncio.wait_for(batcher.close(timeout=0.1), 5)  # the model never finishes by itself
        for request in (running, waiting):
            with pytest.raises(NotReady):
                await request
        model.gate.set()

    run(main())


def test_prepared_requests_with_one_key_share_a_batch_and_a_bad_one_fails_alone() -> None:
    model = Recorder()

    def prepared(value: float):  # noqa: ANN202
        def prepare() -> dict[str, np.ndarray]:
            if value < 0:
                raise BadInput("not an image")
            return rows(value)

        return prepare

    async def main() -> None:
        batcher, stats = make(model, max_batch_size=8, max_queue_delay_us=0)
        model.gate.clear()
        first = asyncio.ensure_future(batcher.submit_prepared(prepared(0), key="img"))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(batcher.submit_prepared(prepared(v), key="img")) for v in (1, -1, 2)]
        await asyncio.sleep(0.05)
        model.gate.set()
        await first
        assert float((await rest[0])[0]["y"][0, 0]) == 2
        assert float((await rest[2])[0]["y"][0, 0]) == 4
        with pytest.raises(BadInput):
            await rest[1]
        # The three shared a batch, whose failed preparation sent each back to run alone.
        assert model.batches == [1, 1, 1]

    run(main())


def test_free_instances_share_the_queue() -> None:
    model = Recorder()

    async def main() -> None:
        batcher = Batcher(model, BatchingConfig(max_batch_size=8, max_queue_delay_us=0, instances=2))
        model.gate.clear()
        requests = [asyncio.ensure_future(batcher.submit(rows(v))) for v in range(6)]
        await asyncio.sleep(0.05)
        model.gate.set()
        await asyncio.gather(*requests)
        # Both instances were free: six queued requests became two batches of three, not one of six.
        assert sorted(model.batches) == [3, 3]

    run(main())
