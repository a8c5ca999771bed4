"""The batcher's collate step: prepared requests of different lengths (and several rows each) share a
batch, padded by the job's collate; and two inputs of one shape keep their own join buffers."""

from __future__ import annotations

import asyncio
import threading

import numpy as np

from lanai.batching import Batcher
from lanai.types import BatchingConfig


def test_requests_of_different_lengths_and_row_counts_share_a_padded_batch() -> None:
    gate = threading.Event()
    batches: list[tuple[int, int]] = []

    def model(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        gate.wait(10)
        ids, mask = inputs["ids"], inputs["mask"]
        batches.append(ids.shape)
        return {"total": (ids * mask).sum(axis=1, keepdims=True), "length": mask.sum(axis=1, keepdims=True)}

    def collate(rows: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        longest = max(r["ids"].shape[1] for r in rows)
        pad = {k: np.concatenate([np.pad(r[k], ((0, 0), (0, longest - r[k].shape[1]))) for r in rows]) for k in rows[0]}
        return pad

    def request(*lengths: int):  # one request, one row per length, ids all 1
        def prepare() -> dict[str, np.ndarray]:
            longest = max(lengths)
            mask = np.array([[1] * n + [0] * (longest - n) for n in lengths])
            return {"ids": mask.copy(), "mask": mask}

        return prepare

    async def main() -> list[dict[str, np.ndarray]]:
        batcher = Batcher(model, BatchingConfig(max_batch_size=8, instances=1, max_queue_delay_us=0))
        gate.clear()
        first = asyncio.ensure_future(batcher.submit_prepared(request(1), key="t", collate=collate))
        await asyncio.sleep(0.05)
        queued = [asyncio.ensure_future(batcher.submit_prepared(request(*n), key="t", collate=collate))
                  for n in ((3,), (5, 2), (4,))]  # fmt: skip
        await asyncio.sleep(0.05)
        gate.set()
        await first
        return [out for out, _ in await asyncio.gather(*queued)]

    outs = asyncio.run(main())
    assert batches[1] == (4, 5)  # three requests, four rows, padded to the longest (5)
    assert [o["length"].ravel().tolist() for o in outs] == [[3], [5, 2], [4]]  # each got its own rows


def test_inputs_of_the_same_shape_do_not_share_a_join_buffer() -> None:
    def model(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"a": inputs["a"].copy(), "b": inputs["b"].copy()}

    async def main() -> list[dict[str, np.ndarray]]:
        batcher = Batcher(model, BatchingConfig(max_batch_size=4, instances=1))
        requests = [batcher.submit({"a": np.full((1, 3), i), "b": np.full((1, 3), -i)}) for i in range(1, 4)]
        return [out for out, _ in await asyncio.gather(*requests)]

    for i, out in enumerate(asyncio.run(main()), 1):
        assert out["a"].tolist() == [[i] * 3] and out["b"].tolist() == [[-i] * 3]
