"""The bundled model is imported with batches of at most 4 rows: its peak memory under load is
onnxruntime's activations for the rows in flight, and larger batches bought it no speed."""

from __future__ import annotations

from pathlib import Path

from lanai.bundled import DEFAULT_BATCHING, DEFAULT_MODEL, ensure_default_model
from lanai.store import Store
from lanai.types import BatchingConfig


def test_bundled_model_batches_at_most_four_rows(tmp_path: Path) -> None:
    store = Store(tmp_path)
    assert ensure_default_model(store)
    batching = store.manifest(DEFAULT_MODEL).batching
    assert batching == DEFAULT_BATCHING
    assert batching.max_batch_size == 4 < BatchingConfig().max_batch_size
    # the rest stays the server's defaults (auto instances, the usual queue)
    assert (batching.instances, batching.max_queue_size) == (0, BatchingConfig().max_queue_size)
