"""How many rows a model's batches may hold when its manifest leaves that to lanai (``max_batch_size = 0``).

On a CPU, lanai runs a model's batches on one-thread instances, about one per core. A batch then buys
little speed: every core is busy anyway, and rows run together save only the per-batch overhead. What a
batch does cost is memory: the runtime keeps activations for every row in flight, for each instance at
once. MobileNetV2 (float32, 224²) takes about 12 MB a row, so batches of 8 on three instances held over
400 MB at 16 concurrent requests, and ran 20 % slower a row than batches of 1 or 2 (their activations no
longer fit a cache); the bundled int8 model takes about 3 MB a row and gains ~10 % from batches of 4 over
batches of 2 (docs/performance.md, issue 16).

So the batch is sized to a budget: the rows in flight on all instances, each costing what the canary
measured for one more row (``backends.canary``'s ``row_bytes``: the runtime's activations) plus its inputs
three times over (the request's decoded array, the batch buffer, the runtime's copy), stay within
``ROWS_BUDGET``. Without a measurement (a model whose rows have no fixed shape), the batch is ``MOST_ROWS``.
"""

from __future__ import annotations

import math

from lanai.backends.base import TensorSpec
from lanai.types import dtype_of

__all__ = ["MOST_ROWS", "ROWS_BUDGET", "batch_rows", "input_row_bytes"]

MOST_ROWS = 8
"""The largest batch lanai picks by itself (a manifest may ask for more)."""
ROWS_BUDGET = 48 * 2**20
"""Bytes of rows in flight, across a model's instances, that sizing aims for."""
_INPUT_COPIES = 3


def input_row_bytes(inputs: tuple[TensorSpec, ...]) -> int:
    """The bytes of one row of every input, where their shapes past the batch axis are fixed (else 0)."""
    total = 0
    for spec in inputs:
        dims = spec.shape[1:]
        if any(d < 1 for d in dims):
            return 0
        total += math.prod(dims) * dtype_of(spec.datatype).itemsize
    return total


def batch_rows(row_bytes: int | None, input_bytes: int, instances: int) -> int:
    """The batch size for a model whose row takes ``row_bytes`` of the runtime's memory (None: not
    measured) and ``input_bytes`` of input, run on ``instances`` instances at once."""
    if row_bytes is None:
        return MOST_ROWS
    per_row = row_bytes + _INPUT_COPIES * input_bytes
    return max(1, min(MOST_ROWS, ROWS_BUDGET // max(1, per_row * max(1, instances))))
